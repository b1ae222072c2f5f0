"""Sending through any SMTP server (aiosmtplib): STARTTLS or TLS per config, with deadlines.

Each email is one connection (log in if a user is set, send, quit): emails are few and
far between, and a fresh connection never trips over one the server dropped. The message
is multipart (plain text, then HTML) with a ``Message-ID`` made from the email's id, so a
retried email carries the same id and receivers can tell the copies apart.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from m3o.runtime.blocking import run_blocking
from m3o.services.emails.transport import DeliveryError, OutgoingEmail

__all__ = ["SmtpTransport", "build_message"]

_PERMANENT = 500


def build_message(email: OutgoingEmail, now: datetime) -> EmailMessage:
    """The MIME message of ``email``: plain text first, the HTML alternative after it."""
    message = EmailMessage()
    message["Subject"] = email.subject
    message["From"] = email.sender.header()
    message["To"] = email.to.header()
    message["Date"] = format_datetime(now.astimezone(UTC))
    sender_domain = email.sender.email.rpartition("@")[2]
    message["Message-ID"] = f"<{email.id}@{sender_domain}>"
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    return message


class SmtpTransport:
    """Sends through one SMTP server.

    ``use_tls`` connects over TLS from the start (port 465) and wins over ``starttls``,
    which requires the connection to be upgraded (the server must offer it).
    ``timeout`` (seconds) bounds each whole send. ``tls_context`` replaces the default
    certificate checks (tests with a self-signed server certificate).
    """

    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        use_tls: bool = False,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str = "",
    ) -> None:
        self._host = host
        self._port = port
        self._username = username or None
        self._password = password or None
        self._use_tls = use_tls
        self._starttls = starttls and not use_tls
        self._timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname

    async def _hostname(self) -> str:
        # aiosmtplib would call socket.getfqdn() on the event loop; it may query DNS.
        if not self._local_hostname:
            self._local_hostname = await run_blocking(socket.getfqdn)
        return self._local_hostname

    async def send(self, email: OutgoingEmail) -> None:
        if email.provider_template and not email.text:
            raise DeliveryError(
                f"Template {email.provider_template} can only be sent through SendGrid",
                permanent=True,
            )
        message = build_message(email, datetime.now(UTC))
        try:
            async with asyncio.timeout(self._timeout):
                await aiosmtplib.send(
                    message,
                    sender=email.sender.email,
                    recipients=[email.to.email],
                    hostname=self._host,
                    port=self._port,
                    username=self._username,
                    password=self._password,
                    use_tls=self._use_tls,
                    start_tls=self._starttls,
                    tls_context=self._tls_context,
                    timeout=self._timeout,
                    local_hostname=await self._hostname(),
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            replies = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            permanent = bool(codes) and all(code >= _PERMANENT for code in codes)
            raise DeliveryError(
                f"SMTP refused the recipient: {replies}", permanent=permanent
            ) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A wrong password is fixed in the config; until then the email waits.
            raise DeliveryError(f"SMTP login failed: {exc.code}") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP error: {exc.code} {exc.message}", permanent=exc.code >= _PERMANENT
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Timeouts, refused or dropped connections, TLS problems: try again later.
            raise DeliveryError(f"SMTP unavailable: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        return None
