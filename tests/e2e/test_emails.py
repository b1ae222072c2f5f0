"""Emails through `m3o serve` to a real SMTP server, and a scheduled email across a restart."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from e2e.serving import ADMIN_PASSWORD, serve
from support.ports import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Inbox:
    """Keeps every message the SMTP server receives (on the server's own thread)."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"

    def wait_for(self, count: int, seconds: float) -> list[EmailMessage]:
        deadline = time.monotonic() + seconds
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_emails_reach_the_smtp_server_and_a_scheduled_one_survives_a_restart(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp
    env = {
        **os.environ,
        "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_EMAILS__ENABLED": "true",
        "M3O_EMAILS__SMTP__HOST": "127.0.0.1",
        "M3O_EMAILS__SMTP__PORT": str(smtp_port),
        "M3O_EMAILS__SMTP__STARTTLS": "false",
    }
    first = serve(tmp_path, env)
    try:
        admin = first.admin_token()
        now = first.post(
            "/emails/send",
            {
                "to": "ann@example.com",
                "template_id": "verification",
                "template_data": '{"code": "ABCDEFGH"}',
            },
            admin,
        )
        assert now.status_code == 200, now.text
        later = first.post(
            "/emails/send",
            {
                "to": "bob@example.com",
                "template_id": "welcome",
                "template_data": '{"name": "Bob"}',
                "send_at": int(time.time()) + 2,
            },
            admin,
        )
        assert later.status_code == 200, later.text
        refused = first.post("/emails/send", {"to": "ann@example.com"}, admin)
        assert refused.status_code == 400
        assert refused.json()["id"] == "emails.send"

        [message] = inbox.wait_for(1, seconds=10)
        assert message["Subject"] == "Verify your M3O account email"
        assert message["To"] == "ann@example.com"
        body = message.get_body(("plain",))
        assert body is not None
        assert (
            "please copy and paste this verification code into the signup form: ABCDEFGH "
            "This code expires in 5 minutes."
        ) in body.get_content()
    finally:
        first_log = first.stop()
    assert "ABCDEFGH" not in first_log

    second = serve(tmp_path, env)
    try:
        messages = inbox.wait_for(2, seconds=20)
        assert [m["To"] for m in messages] == ["ann@example.com", "bob@example.com"]
        assert messages[1]["Subject"] == "Welcome to M3O"
        listed = second.post("/emails/listOutbox", {"status": "sent"}, second.admin_token())
        assert listed.status_code == 200, listed.text
        emails = listed.json()["emails"]
        assert {e["id"] for e in emails} == {now.json()["id"], later.json()["id"]}
        assert {e["transport"] for e in emails} == {"smtp"}
    finally:
        second.stop()


def test_signup_with_the_code_read_from_the_smtp_message(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp
    env = {
        **os.environ,
        "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_EMAILS__ENABLED": "true",
        "M3O_EMAILS__SMTP__HOST": "127.0.0.1",
        "M3O_EMAILS__SMTP__PORT": str(smtp_port),
        "M3O_EMAILS__SMTP__STARTTLS": "false",
    }
    platform = serve(tmp_path, env)
    try:
        started = platform.post("/signup/user", {"email": "Carol@Example.com"})
        assert started.status_code == 200, started.text
        [message] = inbox.wait_for(1, seconds=10)
        assert message["To"] == "carol@example.com"
        body = message.get_body(("plain",))
        assert body is not None
        found = re.search(r"signup form:\s*([A-Z]{8})\s", body.get_content())
        assert found is not None, body.get_content()

        verified = platform.post(
            "/signup/verify",
            {"email": "carol@example.com", "token": found.group(1), "secret": "carol's password"},
        )
        assert verified.status_code == 200, verified.text
        login = platform.post(
            "/customers/login", {"email": "carol@example.com", "password": "carol's password"}
        )
        assert login.status_code == 200, login.text
    finally:
        log = platform.stop()
    assert found.group(1) not in log
