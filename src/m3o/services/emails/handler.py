"""The emails service: Send and ListOutbox.

Send validates the request, renders the template (so bad data is the caller's BadRequest,
not a failed delivery later), and commits the email before any attempt to send it. An
email due now gets its first attempt at once, in the background, so Send's latency does
not depend on the mail server's; a scheduled one, and every retry, is taken by the
courier's periodic run (see ``courier.py``). A transport failure never fails Send: the
email is stored and retried; the caller gets its id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError

from m3o.runtime.auth import CallContext, verify_admin, verify_service
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.email_address import normalise_email
from m3o.runtime.errors import BadRequest, Internal
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import INTERNAL_DETAIL
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.emails import outbox, records
from m3o.services.emails.addresses import Address, parse_address
from m3o.services.emails.courier import Courier
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.records import EmailRecord
from m3o.services.emails.template_data import read_template_data
from m3o.services.emails.templates import SHIPPED, Rendered, TemplateDataError, Templates

__all__ = ["MAX_KEY_LENGTH", "REFERENCE_NAMES", "Emails"]

MAX_KEY_LENGTH = 200
REFERENCE_NAMES: Mapping[str, Mapping[str, str]] = {"verification": {"token": "code"}}
"""Values a shipped template sends to its SendGrid dynamic template under the reference's
name too (the reference's verification email called the code ``token``), so a dynamic
template made for the reference renders unchanged: name -> the value it copies."""
_DYNAMIC_TEMPLATE_ID = re.compile(r"d-[0-9a-f]{32}")
_NO_CONTENT = Rendered(subject="", text="", html="")

_log = get_logger(__name__)


class Emails:
    """Implements ``emails.Emails`` (see ``proto/emails.proto``).

    ``sendgrid_templates`` is None unless the transport is SendGrid; then it maps our
    template names to SendGrid dynamic template ids (a name not listed is rendered here),
    and a ``template_id`` that is none of ours is taken as a dynamic template id. With
    ``outbox_only`` (nothing leaves: the local outbox) a ``template_id`` shaped like a
    SendGrid dynamic template id (``d-`` and 32 hex digits) is recorded as one, as the
    reference accepted any template id with sending disabled; other unknown ids are still
    refused, so a misspelt name of ours is caught before it reaches a real transport.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        courier: Courier,
        templates: Templates,
        default_sender: str,
        sendgrid_templates: Mapping[str, str] | None = None,
        outbox_only: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._courier = courier
        self._templates = templates
        self._default_sender = default_sender
        self._sendgrid_templates = sendgrid_templates
        self._outbox_only = outbox_only
        self._clock = clock

    async def send(self, request: pb.SendRequest, ctx: CallContext) -> pb.SendResponse:
        verify_admin(ctx)
        recipient = self._recipient(ctx, request.to)
        template_id = request.template_id.strip()
        if not template_id:
            raise BadRequest(ctx.endpoint, "Template id is required")
        data = read_template_data(request.template_data)
        sender = self._sender(ctx, getattr(request, "from"))
        key = request.idempotency_key.strip()
        if len(key) > MAX_KEY_LENGTH:
            raise BadRequest(ctx.endpoint, f"Idempotency key is longer than {MAX_KEY_LENGTH}")
        now = self._clock()
        send_at = max(now, _time(ctx, request.send_at)) if request.send_at > 0 else now
        content, provider_template = self._compose(ctx, template_id, data)

        if key:
            async with self._sessions() as session:
                first = await records.find_by_key(session, key)
            if first is not None:
                return pb.SendResponse(id=first.id)
        record = EmailRecord(
            id=str(uuid.uuid4()),
            sender=str(sender),
            recipient=recipient.email,
            template_id=template_id,
            subject=content.subject,
            text=content.text,
            html=content.html,
            created=now,
            send_at=send_at,
            due=send_at,
            provider_template=provider_template,
            template_data=_dynamic_data(template_id, data) if provider_template else {},
            idempotency_key=key,
        )
        stored_id = await self._store(ctx, record)
        if stored_id == record.id and send_at <= now:
            self._courier.dispatch(record.id)
        return pb.SendResponse(id=stored_id)

    async def list_outbox(
        self, request: pb.ListOutboxRequest, ctx: CallContext
    ) -> pb.ListOutboxResponse:
        verify_admin(ctx)
        if request.limit < 0:
            raise BadRequest(ctx.endpoint, "Limit must not be negative")
        limit = min(request.limit or outbox.DEFAULT_LIMIT, outbox.MAX_LIMIT)
        try:
            found = await outbox.list_outbox(
                self._sessions, limit=limit, to=request.to, status=request.status
            )
        except ValueError as exc:
            detail = str(exc)
            raise BadRequest(ctx.endpoint, detail[:1].upper() + detail[1:]) from None
        return pb.ListOutboxResponse(emails=[email.to_proto() for email in found])

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_service(ctx)
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        email = normalise_email(request.email)
        gone = 0
        if email:  # emails are kept by address only: without one there is nothing to find
            async with transaction(self._sessions) as session:
                gone = await records.delete_to(session, email)
        _log.info("emails.customer_deleted", customer_id=customer_id, emails=gone)
        return pb.DeleteCustomerResponse()

    async def _store(self, ctx: CallContext, record: EmailRecord) -> str:
        """Commit ``record`` and return its id, or the id of the email a concurrent Send
        with the same idempotency key stored first."""
        try:
            async with transaction(self._sessions) as session:
                await records.insert_new(session, record)
        except IntegrityError as exc:
            if record.idempotency_key:
                async with self._sessions() as session:
                    first = await records.find_by_key(session, record.idempotency_key)
                if first is not None:
                    return first.id
            raise _store_failed(ctx, exc) from None
        except DBAPIError as exc:
            raise _store_failed(ctx, exc) from None
        return record.id

    def _recipient(self, ctx: CallContext, text: str) -> Address:
        if not text.strip():
            raise BadRequest(ctx.endpoint, "To is required")
        found = parse_address(text)
        if found is None:
            raise BadRequest(ctx.endpoint, "Invalid to address")
        return Address(found.email)

    def _sender(self, ctx: CallContext, text: str) -> Address:
        found = parse_address(text if text.strip() else self._default_sender)
        if found is None:
            raise BadRequest(ctx.endpoint, "Invalid from address")
        return found

    def _compose(
        self, ctx: CallContext, template_id: str, data: Mapping[str, Any]
    ) -> tuple[Rendered, str]:
        """The rendered content and the SendGrid template (or "") to send instead."""
        dynamic = self._sendgrid_templates
        if template_id not in self._templates:
            recorded = self._outbox_only and _DYNAMIC_TEMPLATE_ID.fullmatch(template_id)
            if dynamic is None and not recorded:
                known = ", ".join(SHIPPED)
                raise BadRequest(ctx.endpoint, f"Unknown template {template_id!r}; use {known}")
            return _NO_CONTENT, template_id
        provider_template = (dynamic or {}).get(template_id, "")
        try:
            return self._templates.render(template_id, data), provider_template
        except TemplateDataError as exc:
            if provider_template:
                # SendGrid renders it from its own template, which may want other values.
                return _NO_CONTENT, provider_template
            raise BadRequest(ctx.endpoint, str(exc)) from None


def _store_failed(ctx: CallContext, exc: DBAPIError) -> Internal:
    # The driver's message only: SQLAlchemy's would quote the statement's parameters, the
    # email's body among them, and bodies carry codes and tokens.
    _log.error("emails.store_failed", error=f"{type(exc.orig).__name__}: {exc.orig}")
    return Internal(ctx.endpoint, INTERNAL_DETAIL)


def _dynamic_data(template_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a SendGrid dynamic template receives: ``data``, with the reference's names."""
    found = dict(data)
    for name, source in REFERENCE_NAMES.get(template_id, {}).items():
        if name not in found and source in found:
            found[name] = found[source]
    return found


def _time(ctx: CallContext, seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise BadRequest(ctx.endpoint, "send_at is out of range") from None
