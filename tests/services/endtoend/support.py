"""Helpers of the endtoend tests: accounts, call contexts, the fakes of the services a run
calls, a fake of the platform's HTTP front, and the world under test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory
from m3o.services.balance.proto.fakes import FakeBalanceClient
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.emails.proto.fakes import FakeEmailsClient
from m3o.services.endtoend.alerts import Alert
from m3o.services.endtoend.handler import Endtoend
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from m3o.services.endtoend.run import CheckRun, Platform
from m3o.services.endtoend.runner import Runnable, Runner
from m3o.services.endtoend.settings import EndtoendSettings
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from support.http_fakes import served

EMAIL = "check@example.com"
SECRET = "mailin-shared-secret"
SENDER = "M3O <noreply@m3o.com>"
SUBJECT = "Verify your M3O account email"
CODE = "ABCDEFGH"
CUSTOMER_ID = "cust-1"
CUSTOMER_TOKEN = "customer-access-token"
API_KEY = "m3o_endtoendtestkey"

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="status", type="service", scopes=("service",))
GATEWAY = Account(id="gateway", type="service", scopes=("service",))


def customer(customer_id: str) -> Account:
    return Account(
        id=customer_id, type="customer", scopes=("customer",), name=f"{customer_id}@example.com"
    )


ANN = customer("ann")
BOB = customer("bob")
ROLES: dict[str, Account | None] = {
    "customer": ANN,
    "other customer": BOB,
    "admin": ADMIN,
    "service": SERVICE,
    "anonymous": None,
}


def call(method: str, account: Account | None) -> CallContext:
    return CallContext(service="endtoend", method=method, account=account)


def settings(**changes: Any) -> EndtoendSettings:
    base = EndtoendSettings(
        email=EMAIL,
        api_url="http://127.0.0.1:9",
        mailin_secret=SECRET,
        sender=SENDER,
        subject=SUBJECT,
        code_wait=timedelta(seconds=5),
        poll_interval=timedelta(milliseconds=20),
        request_timeout=timedelta(seconds=10),
    )
    return replace(base, **changes)


def verification_text(code: str = CODE) -> str:
    return (
        "Hi there, please copy and paste this verification code into the signup form: "
        f"{code} This code expires in 5 minutes."
    )


def mail(
    *,
    to: str = EMAIL,
    sender: str = SENDER,
    subject: str = SUBJECT,
    plain: str | None = None,
) -> bytes:
    """A cloudmailin "JSON normalized" post."""
    return orjson.dumps(
        {
            "headers": {"to": to, "from": sender, "subject": subject, "date": "today"},
            "envelope": {"to": to, "from": "bounce@m3o.com"},
            "plain": verification_text() if plain is None else plain,
            "html": "<p>html</p>",
        }
    )


def examples(*endpoints: tuple[str, bool]) -> str:
    """An examples document: one example per (endpoint, run_check)."""
    return orjson.dumps(
        {
            endpoint: [{"title": f"{endpoint} example", "run_check": run, "request": {"n": 1}}]
            for endpoint, run in endpoints
        }
    ).decode()


@dataclass
class FrontState:
    """What the fake HTTP front saw and decides; shared with its server thread."""

    code: str = CODE
    signups: list[dict[str, Any]] = field(default_factory=list)
    verifies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    calls: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)
    """``<api>/<endpoint>`` answered 500."""
    signup_status: int = 200
    key_status: int = 200
    verified: bool = False
    mailed_at: float = 0.0
    """When the verification email went to the outbox (unix seconds), 0 before."""


def front_app(state: FrontState) -> Starlette:
    """The platform's HTTP front as a run sees it: signup, key generation and ``/v1``."""

    async def signup_user(request: Request) -> Response:
        state.signups.append(await request.json())
        if state.signup_status != 200:
            return JSONResponse({"id": "signup.user", "code": 503}, state.signup_status)
        state.mailed_at = time.time()
        return JSONResponse({})

    async def signup_verify(request: Request) -> Response:
        body = await request.json()
        state.verifies.append(body)
        if body.get("token") != state.code:
            return JSONResponse(
                {"id": "signup.verify", "code": 403, "detail": "The token you provided is invalid"},
                403,
            )
        state.verified = True
        return JSONResponse(
            {
                "authToken": {"access_token": CUSTOMER_TOKEN},
                "customerID": CUSTOMER_ID,
                "namespace": "micro",
            }
        )

    async def generate_key(request: Request) -> Response:
        state.keys.append((request.headers.get("authorization", ""), await request.json()))
        if state.key_status != 200:
            return JSONResponse({"id": "v1.generatekey", "code": 500}, state.key_status)
        return JSONResponse({"api_key": API_KEY, "api_key_id": "key-1"})

    async def v1_call(request: Request) -> Response:
        api, endpoint = request.path_params["api"], request.path_params["endpoint"]
        state.calls.append(
            (api, endpoint, request.headers.get("authorization", ""), await request.json())
        )
        if f"{api}/{endpoint}" in state.broken:
            return JSONResponse({"id": f"{api}.{endpoint}", "code": 500, "detail": "boom"}, 500)
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/signup/user", signup_user, methods=["POST"]),
            Route("/signup/verify", signup_verify, methods=["POST"]),
            Route("/v1/api/keys/generate", generate_key, methods=["POST"]),
            Route("/v1/{api}/{endpoint}", v1_call, methods=["POST"]),
        ]
    )


@contextmanager
def fake_front(state: FrontState) -> Iterator[str]:
    with served(front_app(state)) as url:
        yield url


class RecordedAlerts:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def report(self, alert: Alert) -> None:
        self.alerts.append(alert)


@dataclass
class Fakes:
    """The services a run calls, answering as the platform would for ``state``."""

    state: FrontState
    customers: FakeCustomersClient = field(default_factory=FakeCustomersClient)
    emails: FakeEmailsClient = field(default_factory=FakeEmailsClient)
    balance: FakeBalanceClient = field(default_factory=FakeBalanceClient)
    publicapi: FakePublicapiClient = field(default_factory=FakePublicapiClient)

    def __post_init__(self) -> None:
        self.customers.read.calls_through(self._read)
        self.emails.list_outbox.calls_through(self._outbox)
        self.publicapi.list.returns(
            publicapi_pb.ListResponse(
                apis=[publicapi_pb.PublicAPI(name="hello", examples_json=examples(("call", True)))]
            )
        )

    async def _read(self, request: customers_pb.ReadRequest) -> customers_pb.ReadResponse:
        status = "verified" if self.state.verified else "unverified"
        return customers_pb.ReadResponse(
            customer=customers_pb.Customer(id=CUSTOMER_ID, email=request.email, status=status)
        )

    async def _outbox(self, request: emails_pb.ListOutboxRequest) -> emails_pb.ListOutboxResponse:
        if not self.state.mailed_at:
            return emails_pb.ListOutboxResponse()
        return emails_pb.ListOutboxResponse(
            emails=[
                emails_pb.OutboxEmail(
                    id="email-1",
                    to=request.to,
                    subject=SUBJECT,
                    text=verification_text(self.state.code),
                    template_id="verification",
                    status="sent",
                    created=int(self.state.mailed_at),
                )
            ]
        )

    def platform(self) -> Platform:
        return Platform(
            customers=self.customers,
            emails=self.emails,
            balance=self.balance,
            publicapi=self.publicapi,
        )

    def apis(self, *apis: publicapi_pb.PublicAPI) -> None:
        self.publicapi.list.returns(publicapi_pb.ListResponse(apis=list(apis)))


@dataclass
class World:
    handler: Endtoend
    runner: Runner
    alerts: RecordedAlerts
    sessions: SessionFactory
    settings: EndtoendSettings

    async def mailin(self, body: bytes, secret: str = SECRET) -> pb.MailinResponse:
        return await self.handler.mailin(
            pb.MailinRequest(body=body, secret=secret), call("Mailin", GATEWAY)
        )

    async def check(self) -> pb.CheckResponse:
        return await self.handler.check(pb.CheckRequest(), call("Check", None))

    async def run_check(self, account: Account | None = ADMIN) -> pb.RunCheckResponse:
        return await self.handler.run_check(pb.RunCheckRequest(), call("RunCheck", account))


def build_world(
    sessions: SessionFactory,
    counters: CounterStore,
    make_run: Callable[[str], Runnable],
    settings_: EndtoendSettings | None = None,
    clock: Callable[[], Any] | None = None,
) -> World:
    chosen = settings_ or settings()
    alerts = RecordedAlerts()
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    runner = Runner(
        settings=chosen,
        sessions=sessions,
        counters=counters,
        alerts=alerts,
        make_run=make_run,
        **extra,
    )
    handler = Endtoend(settings=chosen, sessions=sessions, runner=runner, **extra)
    return World(handler, runner, alerts, sessions, chosen)


def check_run_factory(
    fakes: Fakes, sessions: SessionFactory, chosen: EndtoendSettings, http: httpx.AsyncClient
) -> Callable[[str], Runnable]:
    def make(run_id: str) -> Runnable:
        return CheckRun(
            run_id=run_id,
            settings=chosen,
            http=http,
            platform=fakes.platform(),
            sessions=sessions,
        )

    return make


async def until(condition: Callable[[], bool], seconds: float = 20) -> None:
    """Wait for ``condition()`` with a generous deadline."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Gate:
    """A run that waits until released, then finds ``outcome``."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.released = asyncio.Event()
        self.started: list[str] = []

    def make(self, run_id: str) -> Runnable:
        gate = self

        class _Run:
            async def run(self) -> Any:
                gate.started.append(run_id)
                await gate.released.wait()
                return gate.outcome

        return _Run()
