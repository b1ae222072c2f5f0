"""A public API to test: the real gateway over a real counter store, with simple keys,
catalog, balance and token sources, and helloworld served in process behind a real
dispatcher (``local:helloworld``), as ``m3o serve`` does.

Keys, catalog entries and quotas use the real records of v1, publicapi and usage, so the
names admission writes are the platform's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import descriptor_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette

from gateway.support import HELLO, Recorder
from m3o.gateway import create_app, directory
from m3o.gateway.v1 import PublicAPISettings, V1Dependencies, V1Routes, create_v1_routes
from m3o.gateway.v1.forwarders import Forwarders
from m3o.gateway.v1.sources import PlatformQuotas
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.config import Config, build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unauthorized, Unavailable
from m3o.runtime.rpc import Dispatcher, InProcessTransport, ServiceSpec, TokenSource
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.services.balance.hot import hot_key
from m3o.services.helloworld import catalog as hello_catalog
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.view import CatalogEntry
from m3o.services.usage.counters import monthly_key
from m3o.services.v1 import KeyRecord, KeyStatus
from m3o.services.v1.proto import v1_pb2 as v1_pb
from m3o.services.v1.proto.client import SPEC as V1_SPEC
from support.backends import drop_engine, make_engine

__all__ = [
    "CUSTOMER",
    "CUSTOMER_TOKEN",
    "KEY",
    "PROJECT",
    "Alerts",
    "Balances",
    "Catalog",
    "FailingCounters",
    "FakeV1",
    "Gateway",
    "Keys",
    "Tokens",
    "UpstreamAuth",
    "assert_upstream_span_sent",
    "config_with",
    "entry",
    "gateway",
    "hello_entry",
    "hello_file",
    "key_record",
    "sqlite_counters",
]

KEY = "m3o_test-key-one"
PROJECT = "project-1"
CUSTOMER = "customer-1"


def key_record(
    key_id: str = "key-1",
    *,
    scopes: Sequence[str] = ("*",),
    owner: str = PROJECT,
    billing_account: str = CUSTOMER,
    blocked: str = "",
) -> KeyRecord:
    return KeyRecord(
        id=key_id,
        hash=f"hash-of-{key_id}",
        scopes=tuple(scopes),
        owner=owner,
        billing_account=billing_account,
        status=KeyStatus.BLOCKED if blocked else KeyStatus.ACTIVE,
        status_message=blocked,
    )


class Keys:
    """Key directory: API key -> record; counts lookups."""

    def __init__(self, records: Mapping[str, KeyRecord] | None = None) -> None:
        self.records = dict(records if records is not None else {KEY: key_record()})
        self.lookups = 0

    async def find(self, api_key: str) -> KeyRecord | None:
        self.lookups += 1
        return self.records.get(api_key)


class Catalog:
    def __init__(self, *entries: CatalogEntry) -> None:
        self.entries = {e.name: e for e in entries}

    def get(self, api_name: str) -> CatalogEntry | None:
        return self.entries.get(api_name.lower())

    @property
    def loaded(self) -> bool:
        return True


def entry(
    name: str,
    address: str,
    *,
    protocol: str = "grpc",
    files: Sequence[descriptor_pb2.FileDescriptorProto] = (),
    pricing: Mapping[str, int] | None = None,
    quotas: Mapping[str, int] | None = None,
    usage_endpoint: str = "",
) -> CatalogEntry:
    raw = descriptor_pb2.FileDescriptorSet(file=list(files)).SerializeToString() if files else b""
    return CatalogEntry.from_proto(
        publicapi_pb.PublicAPI(
            id=f"id-{name}",
            name=name,
            upstream=publicapi_pb.Upstream(address=address, protocol=protocol),
            descriptors=raw,
            pricing=dict(pricing or {}),
            quotas=dict(quotas or {}),
            usage_endpoint=usage_endpoint,
        )
    )


def hello_file() -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorSet.FromString(hello_catalog.descriptor_set()).file[0]


def hello_entry(
    pricing: Mapping[str, int] | None = None, quotas: Mapping[str, int] | None = None
) -> CatalogEntry:
    return entry(
        "helloworld", "local:helloworld", files=[hello_file()], pricing=pricing, quotas=quotas
    )


class Balances:
    """The balance service's Current: loads ``amounts[customer]`` as the hot balance."""

    def __init__(self, counters: CounterStore, amounts: Mapping[str, int] | None = None) -> None:
        self._counters = counters
        self.amounts = dict(amounts or {})
        self.loaded: list[str] = []

    async def load(self, customer_id: str) -> None:
        self.loaded.append(customer_id)
        await self._counters.set_counter_if_absent(
            hot_key(customer_id), self.amounts.get(customer_id, 0)
        )


class Tokens:
    """auth.Grant: ``token-<key id>``."""

    def __init__(self) -> None:
        self.granted: list[str] = []

    async def token(self, key_id: str) -> str:
        self.granted.append(key_id)
        return f"token-{key_id}"


class UpstreamAuth:
    """What upstreams check: the granted tokens name the key's account."""

    async def authenticate(self, token: str) -> Account:
        if not token.startswith("token-"):
            raise Unauthorized("auth", "Unauthorized")
        return Account(id=token.removeprefix("token-"), type="apikey")


@dataclass
class Alerts:
    reported: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    async def report(
        self, category: str, action: str, user_id: str, metadata: dict[str, str]
    ) -> None:
        self.reported.append((category, action, user_id, metadata))


class FailingCounters:
    """A counter store whose admissions fail as if it could not be reached."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        raise Unavailable("counters", "Counter store unavailable")

    async def get_value(self, key: str) -> str | None:
        raise Unavailable("counters", "Counter store unavailable")


@dataclass
class Gateway:
    app: Starlette
    v1: V1Routes
    counters: CounterStore
    config: Config
    publisher: FakePublisher
    hello: Recorder
    keys: Keys
    catalog: Catalog
    balances: Balances
    tokens: Tokens
    alerts: Alerts
    transport: InProcessTransport

    @asynccontextmanager
    async def http(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client of the gateway; on leaving it, the commits of the calls it was answered
        (they run after the answers) are waited for, as a stopping server does."""
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway"
        ) as client:
            yield client
        await self.v1.calls.drain()

    async def events(self) -> list[Any]:
        """The requests/Request events published so far."""
        assert await self.v1.requests.flush()
        events: list[Any] = self.publisher.events("requests")
        return [event.request for event in events]

    async def count(self, name: str, project: str = PROJECT) -> int:
        return await self.counters.get(monthly_key(project, name, datetime.now(UTC)))


def config_with(document: Mapping[str, Any] | None = None) -> Config:
    return build_config(document or {}, {})


@asynccontextmanager
async def sqlite_counters(tmp_path: Path) -> AsyncIterator[CounterStore]:
    engine, schema = await make_engine("sqlite", tmp_path)
    try:
        yield SqlCounterStore(engine)
    finally:
        await drop_engine(engine, schema)


def gateway(
    counters: CounterStore,
    *,
    config: Config | None = None,
    catalog: Catalog | None = None,
    keys: Keys | None = None,
    balances: Mapping[str, int] | None = None,
    settings: PublicAPISettings | None = None,
    hello: Recorder | None = None,
    extra_services: Sequence[tuple[ServiceSpec, object]] = (),
    upstreams: Sequence[tuple[ServiceSpec, object]] = (),
    forwarders: Forwarders | None = None,
    sessions: Any = None,
    reporter: Any = None,
    credentials: TokenSource | None = None,
    publisher: Any = None,
    spill: Any = None,
    served_holds: Any = None,
) -> Gateway:
    """The public API over ``counters``; helloworld is published by default.

    ``upstreams`` are more platform services for ``local:`` APIs (they accept the granted
    tokens); ``extra_services`` are platform services that accept the customer's token.
    ``reporter`` replaces the recording ``alerts`` port (then ``alerts`` records nothing).
    ``credentials`` is the gateway's own service token (sent to usage endpoints).
    ``publisher`` replaces the recording publisher (then ``publisher`` records nothing);
    ``spill`` is where request events go past the buffer; ``served_holds`` finishes
    served calls' holds by publishing their events (the platform profile's way).
    """
    config = config or config_with()
    hello = hello or Recorder()
    transport = InProcessTransport()
    transport.register(Dispatcher(HELLO, hello, authenticator=UpstreamAuth(), rules=None))
    for spec, handler in upstreams:
        transport.register(Dispatcher(spec, handler, authenticator=UpstreamAuth(), rules=None))
    for spec, handler in extra_services:
        transport.register(Dispatcher(spec, handler, authenticator=_Customers(), rules=None))
    recording = FakePublisher()
    catalog = catalog or Catalog(hello_entry())
    keys = keys or Keys()
    loader = Balances(counters, balances)
    tokens = Tokens()
    alerts = Alerts()
    v1 = create_v1_routes(
        V1Dependencies(
            transport=transport,
            catalog=catalog,
            keys=keys,
            quotas=PlatformQuotas(counters, config),
            balances=loader,
            counters=counters,
            tokens=tokens,
            publisher=recording if publisher is None else publisher,
            sessions=sessions,
            spill=spill,
            local_services=directory(HELLO, *(spec for spec, _ in upstreams)),
            alerts=alerts if reporter is None else reporter,
            forwarders=forwarders,
            credentials=credentials,
            served_holds=served_holds,
        ),
        settings,
    )
    app = create_app(
        directory(),
        transport,
        extra_routes=v1.routes,
        on_startup=v1.on_startup,
        on_shutdown=v1.on_shutdown,
    )
    return Gateway(
        app,
        v1,
        counters,
        config,
        recording,
        hello,
        keys,
        catalog,
        loader,
        tokens,
        alerts,
        transport,
    )


CUSTOMER_TOKEN = "customer-jwt"
CUSTOMER_ACCOUNT = Account(id=CUSTOMER, type="customer", scopes=("customer",))


class _Customers:
    async def authenticate(self, token: str) -> Account:
        if token != CUSTOMER_TOKEN:
            raise Unauthorized("auth", "Unauthorized")
        return CUSTOMER_ACCOUNT


class FakeV1:
    """The v1 service's key-management methods, recording who called them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, CallContext]] = []

    def __getattr__(self, name: str) -> Any:
        method = next(m for m in V1_SPEC.methods.values() if m.python_name == name)

        async def handle(request: Any, ctx: CallContext) -> Any:
            self.calls.append((method.name, request, ctx))
            if method.name == "GenerateKey":
                return v1_pb.GenerateKeyResponse(api_key="m3o_new", api_key_id="key-9")
            if method.name == "ListAPIs":
                return v1_pb.ListAPIsResponse(names=["helloworld"])
            return method.response_type()

        return handle


def assert_upstream_span_sent(
    spans: InMemorySpanExporter, api: str, received: Mapping[str, str]
) -> None:
    """What the upstream of ``api`` ``received`` (metadata or headers) names the gateway's
    ``upstream <api>`` span as its parent (W3C ``traceparent``)."""
    [forwarded] = [s for s in spans.get_finished_spans() if s.name == f"upstream {api}"]
    assert forwarded.context is not None
    trace_id, span_id = forwarded.context.trace_id, forwarded.context.span_id
    assert received["traceparent"].startswith(f"00-{trace_id:032x}-{span_id:016x}-")


async def until_true(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Give the loop turns until ``condition()`` holds (in-memory work under way)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0)
