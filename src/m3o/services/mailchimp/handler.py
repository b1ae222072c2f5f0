"""The mailchimp service's RPCs and the one rule both they and the consumers follow.

Roles: admins and services only (the reference let anyone add anyone). The email is
checked first (missing: ``Missing email``; not an address: ``Invalid email: ...``);
block-listed emails are skipped without calling Mailchimp. A Mailchimp failure is logged
with its cause and answered with a generic error: Unavailable when worth trying again.
"""

from __future__ import annotations

from collections.abc import Iterable

from m3o.runtime.auth import CallContext, verify_admin
from m3o.runtime.email_address import InvalidEmail, mask_email, parse_email
from m3o.runtime.errors import BadRequest, Internal, Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import OutboundError
from m3o.services.mailchimp.audience import Audience
from m3o.services.mailchimp.proto import mailchimp_pb2 as pb

__all__ = ["Mailchimp", "Membership"]

_log = get_logger(__name__)


class Membership:
    """Adds and deletes customers on the audience, skipping the block list."""

    def __init__(self, *, audience: Audience, block_list: Iterable[str]) -> None:
        self._audience = audience
        self._blocked = frozenset(e.strip().lower() for e in block_list if e.strip())

    def blocked(self, email: str) -> bool:
        return email.strip().lower() in self._blocked

    async def add(self, email: str) -> None:
        """Raises :class:`~m3o.runtime.outbound.OutboundError` when Mailchimp fails."""
        if self.blocked(email):
            _log.info("mailchimp.skipped", email=mask_email(email), reason="block_list")
            return
        await self._audience.add(email)

    async def delete(self, email: str) -> None:
        """Raises :class:`~m3o.runtime.outbound.OutboundError` when Mailchimp fails."""
        if self.blocked(email):
            _log.info("mailchimp.skipped", email=mask_email(email), reason="block_list")
            return
        await self._audience.delete(email)


class Mailchimp:
    """Implements ``mailchimp.Mailchimp``."""

    def __init__(self, *, membership: Membership) -> None:
        self._membership = membership

    async def add_customer(
        self, request: pb.AddCustomerRequest, ctx: CallContext
    ) -> pb.AddCustomerResponse:
        verify_admin(ctx)
        email = _email(request.email, ctx)
        try:
            await self._membership.add(email)
        except OutboundError as exc:
            raise _failure(exc, ctx, email) from exc
        return pb.AddCustomerResponse()

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_admin(ctx)
        email = _email(request.email, ctx)
        try:
            await self._membership.delete(email)
        except OutboundError as exc:
            raise _failure(exc, ctx, email) from exc
        return pb.DeleteCustomerResponse()


def _email(raw: str, ctx: CallContext) -> str:
    if not raw.strip():
        raise BadRequest(ctx.endpoint, "Missing email")
    try:
        return parse_email(raw)
    except InvalidEmail as exc:
        raise BadRequest(ctx.endpoint, exc.detail()) from exc


def _failure(exc: OutboundError, ctx: CallContext, email: str) -> Exception:
    _log.error("mailchimp.failed", endpoint=ctx.endpoint, email=mask_email(email), error=str(exc))
    if exc.transient:
        return Unavailable(ctx.endpoint, "Mailchimp is unavailable, try again later")
    return Internal(ctx.endpoint, "Failed to update the Mailchimp audience")
