"""CatalogView: the gateway's in-memory catalog, reloaded when publicapi:version changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from google.protobuf import descriptor_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.gateway.v1.paths import parse_path
from m3o.gateway.v1.targets import NO_SUCH_API, UNREAD_CATALOG, Targets
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import NotFound, Unavailable
from m3o.runtime.rpc import StaticToken
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.proto.client import SPEC, PublicapiClient
from m3o.services.publicapi.proto.fakes import FakePublicapiClient
from m3o.services.publicapi.service import PUBLIC_METHODS
from m3o.services.publicapi.view import VERSION_KEY, CatalogEntry, CatalogView, Upstream
from services.publicapi.support import ADMIN, HELLOWORLD, SERVICE, FakeFetcher, api
from support.services import TokenAccounts, serve


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def listing(*entries: pb.PublicAPI) -> pb.ListResponse:
    return pb.ListResponse(apis=list(entries))


def helloworld_entry(**fields: object) -> pb.PublicAPI:
    entry = api(
        id="api-1",
        display_name="Hello",
        pricing={"Helloworld.Stream": 10},
        quotas={"helloworld.stream": 100},
    )
    for name, value in fields.items():
        setattr(entry, name, value)
    return entry


@pytest.fixture
def counters(engine: AsyncEngine) -> CounterStore:
    return SqlCounterStore(engine)


async def test_start_loads_every_entry_with_case_insensitive_lookups(
    counters: CounterStore,
) -> None:
    client = FakePublicapiClient()
    client.list.returns(listing(helloworld_entry()))
    view = CatalogView(client, counters)
    await view.start()
    try:
        entry = view.get("HelloWorld")
        assert entry is not None
        assert view.loaded
        assert entry.name == "helloworld"
        assert entry.display_name == "Hello"
        assert entry.upstream == Upstream("local:helloworld", "grpc")
        assert entry.upstream.local
        assert entry.raw_descriptors == HELLOWORLD
        assert view.price("helloworld", "Helloworld.Stream") == 10
        assert view.price("HELLOWORLD", "helloworld.stream") == 10
        assert view.quota("helloworld", "Helloworld.STREAM") == 100
        assert view.price("helloworld", "Helloworld.Call") == 0
        assert view.quota("helloworld", "Helloworld.Call") == 0
        assert view.price("nope", "Helloworld.Call") == 0
        assert view.get("nope") is None
        assert [e.name for e in view.entries()] == ["helloworld"]
        assert client.list.calls == [pb.ListRequest(omit_documents=True)]
    finally:
        await view.stop()


async def test_entries_tell_endpoints_their_paths_and_streaming(counters: CounterStore) -> None:
    client = FakePublicapiClient()
    client.list.returns(listing(helloworld_entry()))
    view = CatalogView(client, counters)
    await view.poll()
    entry = view.get("helloworld")
    assert entry is not None
    assert [(e.name, e.server_streaming, e.client_streaming) for e in entry.endpoints] == [
        ("Helloworld.Call", False, False),
        ("Helloworld.Stream", True, False),
    ]
    stream = entry.endpoint("helloworld.stream")
    assert stream is not None and stream.streaming
    assert entry.endpoint_for_path(["stream"]) == stream
    assert entry.endpoint_for_path(["Helloworld", "Stream"]) == stream
    assert entry.endpoint_for_path(["Nope"]) is None
    assert entry.endpoint_for_path(["a", "b", "c"]) is None
    method = entry.method(stream)
    assert method.output_type.full_name == "helloworld.StreamResponse"
    assert entry.pool is not None
    assert entry.pool.FindMessageTypeByName("helloworld.StreamRequest").fields[1].name == (
        "messages"
    )


async def test_an_entry_without_descriptors_has_no_endpoints(counters: CounterStore) -> None:
    client = FakePublicapiClient()
    http = pb.PublicAPI(
        id="w", name="weather", upstream=pb.Upstream(address="https://w.example", protocol="http")
    )
    client.list.returns(listing(http))
    view = CatalogView(client, counters)
    await view.poll()
    entry = view.get("weather")
    assert entry is not None
    assert entry.upstream == Upstream("https://w.example", "http")
    assert list(entry.endpoints) == []
    assert entry.pool is None
    assert entry.endpoint_for_path(["Forecast"]) is None


async def test_poll_reloads_only_when_the_version_changes_or_a_minute_passed(
    counters: CounterStore,
) -> None:
    client = FakePublicapiClient()
    client.list.returns(listing(helloworld_entry()))
    clock = ManualClock()
    view = CatalogView(client, counters, clock=clock)
    assert await view.poll() is True
    assert await view.poll() is False
    clock.now += 59
    assert await view.poll() is False
    assert client.list.call_count == 1

    client.list.returns(listing(helloworld_entry(display_name="Changed")))
    await counters.incr(VERSION_KEY)
    assert await view.poll() is True
    entry = view.get("helloworld")
    assert entry is not None and entry.display_name == "Changed"
    assert await view.poll() is False

    clock.now += 60
    assert await view.poll() is True
    assert client.list.call_count == 3


async def test_unchanged_descriptors_are_not_parsed_again(counters: CounterStore) -> None:
    client = FakePublicapiClient()
    client.list.returns(listing(helloworld_entry()))
    view = CatalogView(client, counters)
    await view.refresh()
    first = view.get("helloworld")
    await view.refresh()
    second = view.get("helloworld")
    assert first is not None and second is not None
    assert second is not first
    assert second.descriptors is first.descriptors


async def test_a_failed_reload_keeps_the_entries_and_is_retried(counters: CounterStore) -> None:
    client = FakePublicapiClient()
    client.list.returns_once(listing(helloworld_entry()), Unavailable("publicapi", "down"))
    view = CatalogView(client, counters)
    await view.poll()
    await counters.incr(VERSION_KEY)
    assert await view.poll() is False
    assert view.get("helloworld") is not None
    client.list.returns(listing())
    assert await view.poll() is True
    assert view.get("helloworld") is None


@contextlib.asynccontextmanager
async def _view_whose_first_load_failed(
    counters: CounterStore,
) -> AsyncIterator[tuple[FakePublicapiClient, CatalogView]]:
    client = FakePublicapiClient()
    client.list.raises(Unavailable("publicapi", "down"))
    view = CatalogView(client, counters)
    await view.start()
    try:
        yield client, view
    finally:
        await view.stop()


async def test_a_first_load_that_fails_leaves_the_view_empty_until_a_poll_succeeds(
    counters: CounterStore,
) -> None:
    async with _view_whose_first_load_failed(counters) as (client, view):
        assert not view.loaded
        assert view.get("helloworld") is None
        client.list.returns(listing(helloworld_entry()))
        assert await view.poll() is True
        assert view.loaded


async def test_a_call_before_the_first_load_is_unavailable_not_an_unknown_api(
    counters: CounterStore,
) -> None:
    async with _view_whose_first_load_failed(counters) as (client, view):
        targets = Targets(view)
        for api_name in ("helloworld", "nosuchapi"):  # neither can be told apart yet
            with pytest.raises(Unavailable) as unread:
                targets.resolve(parse_path(f"{api_name}/call"))
            assert unread.value.detail == UNREAD_CATALOG
        client.list.returns(listing(helloworld_entry()))
        assert await view.poll() is True
        assert targets.entry("helloworld").name == "helloworld"
        with pytest.raises(NotFound) as unknown:
            targets.resolve(parse_path("nosuchapi/call"))
        assert unknown.value.detail == NO_SUCH_API


async def test_start_waits_a_bounded_time_for_publicapi_and_the_poller_finishes_the_load(
    counters: CounterStore,
) -> None:
    client = FakePublicapiClient()
    answering = asyncio.Event()

    async def list_once_answering(request: pb.ListRequest) -> pb.ListResponse:
        await answering.wait()  # as a call waiting for publicapi to listen
        return listing(helloworld_entry())

    client.list.calls_through(list_once_answering)
    view = CatalogView(client, counters, poll_interval=timedelta(hours=1))
    async with asyncio.timeout(5):  # the default wait is 2 s
        await view.start(first_load_wait=timedelta(milliseconds=50))
    try:
        assert not view.loaded
        answering.set()
        async with asyncio.timeout(5):  # no poll is due for an hour: the first load ends
            while not view.loaded:
                await asyncio.sleep(0.01)
        assert view.get("helloworld") is not None
        assert len(client.list.calls) == 1
    finally:
        await view.stop()


async def test_start_without_a_bound_returns_once_the_first_load_is_done(
    counters: CounterStore,
) -> None:
    client = FakePublicapiClient()

    async def slow_list(request: pb.ListRequest) -> pb.ListResponse:
        await asyncio.sleep(0.2)
        return listing(helloworld_entry())

    client.list.calls_through(slow_list)
    view = CatalogView(client, counters)
    await view.start(first_load_wait=None)
    try:
        assert view.loaded
    finally:
        await view.stop()


class DownCounters:
    async def get(self, key: str) -> int:
        raise Unavailable("counters", "Counter store unavailable")


async def test_without_the_counter_store_the_view_reloads_every_minute() -> None:
    client = FakePublicapiClient()
    client.list.returns(listing(helloworld_entry()))
    clock = ManualClock()
    view = CatalogView(client, DownCounters(), clock=clock)  # type: ignore[arg-type]
    assert await view.poll() is True
    assert await view.poll() is False
    clock.now += 60
    assert await view.poll() is True


@pytest.fixture(params=["sql", "redis"])
async def any_counters(
    request: pytest.FixtureRequest, engine: AsyncEngine, redis: aioredis.Redis
) -> AsyncIterator[CounterStore]:
    if request.param == "redis":
        yield RedisCounterStore(redis, prefix="test:")
    else:
        yield SqlCounterStore(engine)


async def test_a_running_view_sees_publish_update_and_remove_within_its_poll(
    sessions: SessionFactory, any_counters: CounterStore
) -> None:
    handler = Publicapi(
        sessions=sessions,
        publisher=FakePublisher(),
        counters=any_counters,
        fetch_descriptors=FakeFetcher(),
    )
    accounts = TokenAccounts({"admin": ADMIN, "gateway": SERVICE})
    transport = serve(SPEC, handler, authenticator=accounts, public=PUBLIC_METHODS)
    admin = PublicapiClient(transport, StaticToken("admin"))
    view = CatalogView(
        PublicapiClient(transport, StaticToken("gateway")),
        any_counters,
        poll_interval=timedelta(milliseconds=20),
    )

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not check():
                await asyncio.sleep(0.01)

    await view.start()
    try:
        assert view.get("helloworld") is None
        published = await admin.publish(pb.PublishRequest(api=api(pricing={"Helloworld.Call": 3})))
        await until(lambda: view.get("helloworld") is not None)
        assert view.price("helloworld", "helloworld.call") == 3
        entry = view.get("helloworld")
        assert entry is not None and entry.raw_descriptors == HELLOWORLD

        await admin.update(
            pb.UpdateRequest(api=pb.PublicAPI(id=published.api.id, pricing={"Helloworld.Call": 5}))
        )
        await until(lambda: view.price("helloworld", "Helloworld.Call") == 5)

        await admin.remove(pb.RemoveRequest(name="helloworld"))
        await until(lambda: view.get("helloworld") is None)
    finally:
        await view.stop()


async def test_stop_without_start_is_harmless(counters: CounterStore) -> None:
    view = CatalogView(FakePublicapiClient(), counters)
    await view.stop()
    assert not view.loaded


def _two_methods_differing_in_case() -> bytes:
    """Descriptors of ``Helloworld`` with the methods ``Call`` and ``CALL``."""
    file = descriptor_pb2.FileDescriptorProto(name="case.proto", package="case", syntax="proto3")
    file.message_type.add(name="Req")
    file.message_type.add(name="Rsp")
    service = file.service.add(name="Helloworld")
    for method in ("Call", "CALL"):
        service.method.add(name=method, input_type=".case.Req", output_type=".case.Rsp")
    return descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString()


@pytest.mark.parametrize(
    "parts",
    [["call"], ["Call"], ["CALL"], ["cALL"], ["helloworld", "call"], ["HELLOWORLD", "CALL"]],
)
def test_a_path_names_the_endpoint_the_gateway_calls(parts: list[str]) -> None:
    entry = CatalogEntry.from_proto(
        api(
            upstream=pb.Upstream(address="h:1", protocol="grpc"),
            descriptors=_two_methods_differing_in_case(),
        )
    )
    called = Targets(StaticCatalog(entry)).resolve(parse_path("/".join(["helloworld", *parts])))

    found = entry.endpoint_for_path(parts)

    assert found is not None
    assert found.name == called.endpoint


def test_a_path_spelling_one_of_two_names_that_differ_in_case_names_that_one() -> None:
    entry = CatalogEntry.from_proto(api(descriptors=_two_methods_differing_in_case()))
    found = [entry.endpoint_for_path(parts) for parts in (["call"], ["CALL"], ["x", "CALL"])]
    assert [e.name if e else None for e in found] == [
        "Helloworld.Call",
        "Helloworld.CALL",
        None,
    ]


class StaticCatalog:
    def __init__(self, entry: CatalogEntry) -> None:
        self._entry = entry

    def get(self, api_name: str) -> CatalogEntry | None:
        return self._entry if api_name.lower() == self._entry.name else None

    @property
    def loaded(self) -> bool:
        return True
