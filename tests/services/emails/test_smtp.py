"""SMTP against a real SMTP server (aiosmtpd) started by each test on a free port."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from structlog.testing import capture_logs

from m3o.runtime.store import SessionFactory
from m3o.services.emails.addresses import Address
from m3o.services.emails.records import Status
from m3o.services.emails.smtp import SmtpTransport
from m3o.services.emails.transport import DeliveryError, OutgoingEmail
from services.emails.support import CODE, make_world, send_request
from support.certificates import Certificate, self_signed
from support.services import MovableClock

USER, PASSWORD = "mailer", "smtp-secret-pw"


@dataclass
class Inbox:
    """An aiosmtpd handler keeping what it receives; refuses ``nobody@``/``later@``."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: mailbox unavailable"
        if address.startswith("later@"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        found = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
        return found


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=good, handled=False)


@asynccontextmanager
async def smtp_server(
    inbox: Inbox, *, implicit_tls: ssl.SSLContext | None = None, **options: Any
) -> AsyncIterator[int]:
    """An SMTP server in this event loop on a free port; yields the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="localhost", **options),
        "127.0.0.1",
        0,
        ssl=implicit_tls,
    )
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


def outgoing(to: str = "ann@example.com") -> OutgoingEmail:
    return OutgoingEmail(
        id="e-1",
        sender=Address("noreply@m3o.com", "M3O"),
        to=Address(to),
        subject="Hello",
        text="Plain words.",
        html="<p>Rich words.</p>",
    )


def plain_transport(port: int, **options: Any) -> SmtpTransport:
    return SmtpTransport(
        host="127.0.0.1", port=port, starttls=False, local_hostname="test.local", **options
    )


async def test_send_delivers_the_rendered_email_to_the_smtp_server(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    inbox = Inbox()
    async with smtp_server(inbox) as port:
        world = make_world(sessions, plain_transport(port), clock)
        email_id = await world.send(send_request(to="Ann@Example.com"))

    [envelope] = inbox.envelopes
    assert envelope.mail_from == "noreply@m3o.com"
    assert envelope.rcpt_tos == ["ann@example.com"]
    [message] = inbox.messages()
    assert message["Subject"] == "Verify your M3O account email"
    assert message["To"] == "ann@example.com"
    assert message["From"] == "M3O <noreply@m3o.com>"
    assert message["Message-ID"] == f"<{email_id}@m3o.com>"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert (
        "please copy and paste this verification code into the signup form: "
        f"{CODE} This code expires in 5 minutes."
    ) in text.get_content()
    assert CODE in html.get_content()
    stored = await world.email(email_id)
    assert (stored.status, stored.transport) == (Status.SENT, "smtp")


async def test_starttls_upgrades_the_connection_before_logging_in(
    certificate: Certificate,
) -> None:
    inbox = Inbox()
    async with smtp_server(
        inbox,
        tls_context=certificate.server,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    ) as port:
        transport = SmtpTransport(
            host="127.0.0.1",
            port=port,
            username=USER,
            password=PASSWORD,
            starttls=True,
            tls_context=certificate.client,
            local_hostname="test.local",
        )
        await transport.send(outgoing())

    [message] = inbox.messages()
    assert message["Subject"] == "Hello"


async def test_tls_from_the_start_is_used_when_configured(certificate: Certificate) -> None:
    inbox = Inbox()
    async with smtp_server(inbox, implicit_tls=certificate.server) as port:
        transport = SmtpTransport(
            host="127.0.0.1",
            port=port,
            use_tls=True,
            starttls=True,  # ignored: the connection is encrypted from the start
            tls_context=certificate.client,
            local_hostname="test.local",
        )
        await transport.send(outgoing())

    assert len(inbox.envelopes) == 1


async def test_a_wrong_password_is_transient_and_never_shown(certificate: Certificate) -> None:
    inbox = Inbox()
    async with smtp_server(
        inbox, tls_context=certificate.server, auth_required=True, authenticator=_authenticator
    ) as port:
        transport = SmtpTransport(
            host="127.0.0.1",
            port=port,
            username=USER,
            password="wrong-password-123",
            tls_context=certificate.client,
            local_hostname="test.local",
        )
        with pytest.raises(DeliveryError) as raised:
            await transport.send(outgoing())

    assert not raised.value.permanent
    assert "wrong-password-123" not in str(raised.value)
    assert inbox.envelopes == []


async def test_a_server_without_starttls_is_refused_when_starttls_is_required() -> None:
    async with smtp_server(Inbox()) as port:
        transport = SmtpTransport(
            host="127.0.0.1", port=port, starttls=True, local_hostname="test.local"
        )
        with pytest.raises(DeliveryError) as raised:
            await transport.send(outgoing())

    assert not raised.value.permanent


@pytest.mark.parametrize(
    ("to", "permanent"),
    [("nobody@example.com", True), ("later@example.com", False)],
    ids=["550-permanent", "450-transient"],
)
async def test_a_refused_recipient_fails_permanently_only_on_a_5xx_reply(
    to: str, permanent: bool
) -> None:
    async with smtp_server(Inbox()) as port:
        with pytest.raises(DeliveryError) as raised:
            await plain_transport(port).send(outgoing(to))

    assert raised.value.permanent is permanent


async def test_a_server_that_is_down_is_a_transient_failure() -> None:
    async with smtp_server(Inbox()) as port:
        pass  # closed again: nothing listens on the port now

    with pytest.raises(DeliveryError) as raised:
        await plain_transport(port).send(outgoing())

    assert not raised.value.permanent


async def test_a_server_that_never_answers_times_out() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # never greets

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DeliveryError) as raised:
            await plain_transport(port, timeout=0.2).send(outgoing())
        took = asyncio.get_running_loop().time() - started
    finally:
        for writer in connections:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()

    assert not raised.value.permanent
    assert took < 2


async def test_smtp_delivery_logs_neither_the_password_nor_the_code(
    sessions: SessionFactory, clock: MovableClock, certificate: Certificate
) -> None:
    inbox = Inbox()
    with capture_logs() as logs:
        async with smtp_server(
            inbox,
            tls_context=certificate.server,
            auth_required=True,
            authenticator=_authenticator,
        ) as port:

            def logging_in_with(password: str) -> SmtpTransport:
                return SmtpTransport(
                    host="127.0.0.1",
                    port=port,
                    username=USER,
                    password=password,
                    tls_context=certificate.client,
                    local_hostname="test.local",
                )

            failing = make_world(sessions, logging_in_with("bad-password-456"), clock)
            await failing.send()
            working = make_world(sessions, logging_in_with(PASSWORD), clock)
            clock.advance(timedelta(minutes=5))
            await working.courier.deliver_due()

    assert len(inbox.envelopes) == 1
    text = repr(logs)
    for secret in (PASSWORD, "bad-password-456", CODE, "ann@example.com"):
        assert secret not in text
    assert "a***@example.com" in text
    assert {"emails.retry", "emails.sent"} <= {entry["event"] for entry in logs}
