"""How an email leaves: one small interface, and the local outbox behind it.

Implementations: :class:`LocalOutbox` (here; no transport configured),
:class:`~m3o.services.emails.smtp.SmtpTransport` and
:class:`~m3o.services.emails.sendgrid.SendgridTransport`. A transport either returns (the
email was accepted) or raises :class:`DeliveryError`, saying whether trying again may
help: a timeout, a connection failure or a 5xx is transient; a refusal of the message
itself (a 4xx from SendGrid, a permanent SMTP reply) is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from m3o.runtime.email_address import mask_email
from m3o.runtime.logging import get_logger
from m3o.services.emails.addresses import Address

__all__ = ["DeliveryError", "LocalOutbox", "MailTransport", "OutgoingEmail"]

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email, ready to go.

    ``provider_template`` names a SendGrid dynamic template to send with ``template_data``
    instead of the rendered subject, text and HTML (empty: send those).
    """

    id: str
    sender: Address
    to: Address
    subject: str
    text: str
    html: str
    provider_template: str = ""
    template_data: Mapping[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A send failed. ``permanent``: trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailTransport(Protocol):
    """Sends one email, or raises :class:`DeliveryError`."""

    @property
    def name(self) -> str:
        """``outbox``, ``smtp`` or ``sendgrid``: recorded with each sent email."""
        ...

    async def send(self, email: OutgoingEmail) -> None: ...

    async def close(self) -> None:
        """Release connections (at shutdown)."""
        ...


class LocalOutbox:
    """No transport: the email stays in the table, marked sent, and the log says so.

    The log names the recipient partly masked and never the body (it carries codes and
    tokens); ``m3o emails list`` shows the whole email to whoever can read the database.
    """

    name = "outbox"

    async def send(self, email: OutgoingEmail) -> None:
        # A SendGrid dynamic template is recorded as what would be sent: its id and data.
        _log.info(
            "emails.outbox",
            email_id=email.id,
            to=mask_email(email.to.email),
            subject=email.subject,
            template=email.provider_template or None,
            hint="`m3o emails list` shows it",
        )

    async def close(self) -> None:
        return None
