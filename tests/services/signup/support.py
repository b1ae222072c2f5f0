"""Helpers of the signup tests: a customers stand-in, the world under test."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from m3o.events.customers import TOPIC, Event
from m3o.runtime.auth import CallContext
from m3o.runtime.errors import Conflict, NotFound
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.fakes import FakeAuthClient
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.emails.proto.fakes import FakeEmailsClient
from m3o.services.signup.handler import Signup
from m3o.services.signup.proto import signup_pb2 as pb
from support.services import MovableClock, forget_calls

START = datetime(2024, 1, 1, tzinfo=UTC)
PASSWORD = "correct horse battery"
ISSUED = auth_pb.Token(
    access_token="access-jwt", refresh_token="refresh-opaque", created=1, expiry=2
)


def call(method: str) -> CallContext:
    """An anonymous call, as every signup endpoint is public."""
    return CallContext(service="signup", method=method)


@dataclass
class CustomersDouble:
    """Customers as the service behaves, behind a recording fake (tests may override)."""

    fake: FakeCustomersClient = field(default_factory=FakeCustomersClient)
    by_id: dict[str, customers_pb.Customer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fake.read.calls_through(self._read)
        self.fake.create.calls_through(self._create)
        self.fake.mark_verified.calls_through(self._mark_verified)

    def add(self, email: str, status: str = "unverified") -> customers_pb.Customer:
        customer = customers_pb.Customer(
            id=str(uuid.uuid4()), email=email, status=status, created=100, updated=100
        )
        self.by_id[customer.id] = customer
        return customer

    def _find(self, customer_id: str, email: str) -> customers_pb.Customer | None:
        if customer_id:
            return self.by_id.get(customer_id)
        return next((c for c in self.by_id.values() if c.email == email), None)

    async def _read(self, request: customers_pb.ReadRequest) -> customers_pb.ReadResponse:
        found = self._find(request.id, request.email)
        if found is None:
            raise NotFound("customers.read.notfound", "Customer not found")
        return customers_pb.ReadResponse(customer=found)

    async def _create(self, request: customers_pb.CreateRequest) -> customers_pb.CreateResponse:
        found = self._find("", request.email)
        if found is not None and found.status != "unverified":
            raise Conflict("customers.create.exists", "A customer with this email exists")
        return customers_pb.CreateResponse(customer=found or self.add(request.email))

    async def _mark_verified(
        self, request: customers_pb.MarkVerifiedRequest
    ) -> customers_pb.MarkVerifiedResponse:
        found = self.by_id[request.id]
        if found.status == "unverified":
            found.status = "verified"
        return customers_pb.MarkVerifiedResponse()


@dataclass
class World:
    handler: Signup
    customers: CustomersDouble
    auth: FakeAuthClient
    emails: FakeEmailsClient
    publisher: FakePublisher
    clock: MovableClock
    sessions: SessionFactory

    def events(self) -> list[Event]:
        found = self.publisher.events(TOPIC)
        return [event for event in found if isinstance(event, Event)]

    def sent(self, template: str) -> list[emails_pb.SendRequest]:
        return [r for r in self.emails.send.calls if r.template_id == template]

    def last_code(self) -> str:
        data = orjson.loads(self.sent("verification")[-1].template_data)
        code: str = data["code"]
        return code

    def last_reset_token(self) -> str:
        data = orjson.loads(self.sent("recovery")[-1].template_data)
        token: str = data["token"]
        return token

    async def start_signup(self, email: str = "ann@example.com") -> str:
        """Run User for ``email`` and return the emailed code."""
        await self.handler.user(pb.UserRequest(email=email), call("User"))
        return self.last_code()

    async def verify(
        self, code: str, email: str = "ann@example.com", secret: str = PASSWORD
    ) -> pb.VerifyResponse:
        request = pb.VerifyRequest(email=email, token=code, secret=secret)
        return await self.handler.verify(request, call("Verify"))

    def forget_calls(self) -> None:
        """Forget events and calls so far (a test's setup is not its subject)."""
        self.publisher.published.clear()
        forget_calls(self.customers.fake, self.auth, self.emails)


def wrong_code(code: str) -> str:
    """A code of the right shape that is not ``code``."""
    return "".join("B" if letter == "A" else "A" for letter in code)


CODE_SHAPE = re.compile(r"[A-Z]{8}")
