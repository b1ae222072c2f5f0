"""Helpers of the emails tests: accounts, a scriptable transport, a fake SendGrid, the world."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.store import SessionFactory
from m3o.services.emails import outbox
from m3o.services.emails.courier import Courier, RetryPolicy
from m3o.services.emails.handler import Emails
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.records import EmailRecord
from m3o.services.emails.sendgrid import SendgridTransport
from m3o.services.emails.templates import Templates
from m3o.services.emails.transport import DeliveryError, MailTransport, OutgoingEmail
from support.services import MovableClock

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="signup", type="service", scopes=("service",))
CUSTOMER = Account(id="c1", type="customer", scopes=("customer",), name="ann@example.com")
START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_FROM = "M3O <noreply@m3o.com>"
CODE = "QWERTYUI"


def call(method: str = "Send", account: Account | None = ADMIN) -> CallContext:
    return CallContext(service="emails", method=method, account=account)


def send_request(
    to: str = "ann@example.com",
    template_id: str = "verification",
    data: Mapping[str, Any] | None = None,
    sender: str = "",
    **fields: Any,
) -> pb.SendRequest:
    """A Send request; ``data`` defaults to a verification code, ``sender`` is ``from``."""
    values = {"code": CODE} if data is None else dict(data)
    request = pb.SendRequest(
        to=to, template_id=template_id, template_data=orjson.dumps(values).decode(), **fields
    )
    setattr(request, "from", sender)
    return request


@dataclass
class RecordingTransport:
    """A transport that keeps what it sends; scripted failures come first, in order."""

    name: str = "recording"
    sent: list[OutgoingEmail] = field(default_factory=list)
    failures: list[DeliveryError] = field(default_factory=list)
    attempts: int = 0
    hang: asyncio.Event | None = None
    """When set, each send waits on it (to stop a process in the middle of a send)."""
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    async def send(self, email: OutgoingEmail) -> None:
        self.attempts += 1
        self.entered.set()
        if self.hang is not None:
            await self.hang.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(email)

    async def close(self) -> None:
        self.closed = True


class UnusedDatabase:
    """Sessions for tests that must not reach the database: any use fails the test."""

    def __call__(self) -> Any:
        raise AssertionError("the database was used")


@dataclass
class World:
    """The handler and courier over a database, with a transport and a clock."""

    handler: Emails
    courier: Courier
    transport: MailTransport
    clock: MovableClock
    sessions: SessionFactory

    async def send(self, request: pb.SendRequest | None = None) -> str:
        """Send as an admin and wait for the first attempt to finish."""
        response = await self.handler.send(request or send_request(), call("Send"))
        await self.courier.drain()
        return response.id

    async def emails(self, **filters: Any) -> list[EmailRecord]:
        return await outbox.list_outbox(self.sessions, **filters)

    async def email(self, email_id: str) -> EmailRecord:
        [found] = [e for e in await self.emails(limit=1000) if e.id == email_id]
        return found


def make_world(
    sessions: SessionFactory,
    transport: MailTransport,
    clock: MovableClock,
    *,
    policy: RetryPolicy | None = None,
    sendgrid_templates: Mapping[str, str] | None = None,
    outbox_only: bool = False,
) -> World:
    courier = Courier(sessions=sessions, transport=transport, clock=clock, policy=policy)
    handler = Emails(
        sessions=sessions,
        courier=courier,
        templates=Templates(),
        default_sender=DEFAULT_FROM,
        sendgrid_templates=sendgrid_templates,
        outbox_only=outbox_only,
        clock=clock,
    )
    return World(handler, courier, transport, clock, sessions)


API_KEY = "SG.secret-api-key-value"
API_URL = "https://sendgrid.test"


@dataclass
class FakeSendgrid:
    """Answers ``/v3/mail/send`` with the scripted statuses (then 202), keeping requests."""

    statuses: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    fail_with: Callable[[httpx.Request], Exception] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with(request)
        status = self.statuses.pop(0) if self.statuses else 202
        if status >= 400:
            return httpx.Response(status, json={"errors": [{"message": f"status {status}"}]})
        return httpx.Response(status)

    def bodies(self) -> list[dict[str, object]]:
        return [orjson.loads(request.content) for request in self.requests]

    def transport(self, ip_pool_name: str = "") -> SendgridTransport:
        return SendgridTransport(
            api_key=API_KEY,
            api_url=API_URL,
            ip_pool_name=ip_pool_name,
            timeout=1.0,
            client=httpx.AsyncClient(transport=httpx.MockTransport(self)),
        )
