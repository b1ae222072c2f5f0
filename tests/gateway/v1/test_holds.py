"""What is charged is what was answered with a 2xx, never more: the counter store failing
at each step after admission, and a gateway dying mid-burst, on every counter store.
Charged == monthly counters == published events <= 2xx answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.v1.servers import serve_app
from gateway.v1.support import CUSTOMER, KEY, Catalog, gateway, hello_entry
from m3o.events.requests import Event, EventType
from m3o.gateway.v1.holds import LEASE_PREFIX, Holds, envelope_from_note, note_of
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Hold
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events.redis_served import RedisServedHolds
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.usage.counters import TOTAL
from runtime.counters_fixtures import call

AUTH = {"Authorization": f"Bearer {KEY}"}
PRICE = 10
FUNDS = 1_000
STEPS = [
    "admit",
    "admit_lost_reply",
    "commit",
    "commit_lost_reply",
    "release",
    "release_lost_reply",
]


class BrokenAt:
    """The counter store failing at one step, once: before it runs, or after it ran (the
    reply lost)."""

    def __init__(self, inner: CounterStore, step: str) -> None:
        self._inner = inner
        self.step = step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _fail(self, step: str) -> bool:
        if self.step == step:
            self.step = ""
            return True
        return False

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        if self._fail("admit"):
            raise Unavailable("counters", "Counter store unavailable")
        decisions = await self._inner.admit_many(requests)
        if self._fail("admit_lost_reply"):
            raise Unavailable("counters", "Counter store unavailable")
        return decisions

    async def commit_many(self, commits: Sequence[tuple[Hold, str]]) -> list[bool]:
        if self._fail("commit"):
            raise Unavailable("counters", "Counter store unavailable")
        found = await self._inner.commit_many(commits)
        if self._fail("commit_lost_reply"):
            raise Unavailable("counters", "Counter store unavailable")
        return found

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        if self._fail("release"):
            raise Unavailable("counters", "Counter store unavailable")
        await self._inner.release(request, decision)
        if self._fail("release_lost_reply"):
            raise Unavailable("counters", "Counter store unavailable")

    async def settle_many(self, holds: Sequence[Hold]) -> None:
        if self._fail("settle"):
            raise Unavailable("counters", "Counter store unavailable")
        await self._inner.settle_many(holds)
        if self._fail("settle_lost_reply"):
            raise Unavailable("counters", "Counter store unavailable")


def test_a_note_gives_back_its_event_as_written() -> None:
    envelope = Envelope.wrap("requests", Event(type=EventType.EventTypeRequest))

    assert envelope_from_note(note_of(envelope)) == envelope


def test_a_note_written_with_spaces_between_its_fields_is_read() -> None:
    """Notes written by an earlier gateway (``json.dumps``'s separators) are recovered."""
    envelope = Envelope.wrap("requests", Event(type=EventType.EventTypeRequest))
    spaced = json.dumps(json.loads(note_of(envelope)))

    assert ", " in spaced
    assert envelope_from_note(spaced) == envelope


async def _books(gw: Any, counters: CounterStore) -> tuple[int, int, int]:
    """(units debited, monthly calls, request events published), once the commits and
    releases under way are done."""
    await gw.v1.calls.drain()
    assert await gw.v1.holds.retry_releases()
    assert gw.v1.holds.in_flight == 0
    charged = await counters.get(debited_key(CUSTOMER))
    monthly = await gw.count(TOTAL)
    return charged, monthly, len(await gw.events())


@pytest.mark.parametrize("step", STEPS)
async def test_a_call_is_charged_only_when_answered_200_whichever_step_fails(
    any_counters: CounterStore, step: str
) -> None:
    broken = BrokenAt(any_counters, step)
    gw = gateway(
        broken,  # type: ignore[arg-type]
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": PRICE})),
        balances={CUSTOMER: FUNDS},
    )
    answers = []
    async with gw.http() as client:
        # The release steps are reached through a failing upstream.
        name = "crash" if step.startswith("release") else "Alice"
        for _ in range(3):
            response = await client.post("/v1/helloworld/call", json={"name": name}, headers=AUTH)
            answers.append(response)
            name = "Alice"
    first = answers[0]
    committing = step.startswith("commit")
    if committing:
        # Answered first, committed after: the commit failed, the call went free.
        assert first.status_code == 200, first.text
    else:
        assert first.status_code in (500, 503), first.text
        assert "X-M3O-Price" not in first.headers
    assert [a.status_code for a in answers[1:]] == [200, 200]
    served = sum(1 for a in answers if a.status_code == 200)
    charged_calls = served - 1 if committing else served

    charged, monthly, events = await _books(gw, any_counters)
    assert (charged, monthly, events) == (charged_calls * PRICE, charged_calls, charged_calls)
    assert charged_calls <= served
    assert await any_counters.get(hot_key(CUSTOMER)) == FUNDS - charged_calls * PRICE
    assert await any_counters.holds("v1:holds") == []


class BrokenServed:
    """Served holds settled into the stream, failing once: before the script runs, or
    after it ran (the reply lost)."""

    def __init__(self, inner: RedisServedHolds, step: str) -> None:
        self._inner = inner
        self.step = step
        self.runs = 0

    async def settle_served(self, served: Sequence[tuple[Hold, Envelope]]) -> list[bool]:
        self.runs += 1
        if self.step == "commit":
            self.step = ""
            raise Unavailable("counters", "Counter store unavailable")
        found = await self._inner.settle_served(served)
        if self.step == "commit_lost_reply":
            self.step = ""
            raise Unavailable("counters", "Counter store unavailable")
        return found


async def _streamed(redis: Any) -> list[Any]:
    """The request events in the requests stream."""
    entries = await redis.xrange("m3o:events:requests")
    return [Event.FromString(fields[b"payload"]).request for _, fields in entries]


@pytest.mark.parametrize("step", ["", "commit", "commit_lost_reply"])
async def test_with_served_holds_a_commit_publishes_the_event_and_settles_the_hold(
    redis: Any, step: str
) -> None:
    """The platform profile's commit: the event published and the hold removed in one
    step, so the request log publishes nothing. A commit that failed before running
    leaves the call free and unpublished; one whose reply was lost ran whole: charged
    and published, and the release that follows finds nothing to undo."""
    counters = RedisCounterStore(redis)
    served = BrokenServed(RedisServedHolds(counters), step)
    gw = gateway(
        counters,
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": PRICE})),
        balances={CUSTOMER: FUNDS},
        served_holds=served,
    )
    async with gw.http() as client:
        for _ in range(3):
            response = await client.post(
                "/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH
            )
            assert response.status_code == 200, response.text
    charged_calls = 2 if step == "commit" else 3

    charged, monthly, logged = await _books(gw, counters)
    streamed = await _streamed(redis)
    assert logged == 0  # the request log had nothing to publish
    books = (charged, monthly, len(streamed))
    assert books == (charged_calls * PRICE, charged_calls, charged_calls)
    assert len({event.request_id for event in streamed}) == charged_calls
    assert all(event.price == str(PRICE) for event in streamed)
    assert served.runs == 3
    assert await counters.get(hot_key(CUSTOMER)) == FUNDS - charged_calls * PRICE
    assert await counters.holds("v1:holds") == []


async def test_a_dead_gateways_calls_are_finished_by_the_next_one(
    any_counters: CounterStore,
) -> None:
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    dead = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    async with dead.http() as client:
        for n in range(5):
            response = await client.post(
                "/v1/helloworld/call", json={"name": f"n{n}"}, headers=AUTH
            )
            assert response.status_code == 200
    # Two more calls admitted (charged) and never answered: the process dies now, with
    # the five events still in its memory.
    prepared = await dead.v1.calls.prepare("/v1/helloworld/call", "helloworld/call", KEY)
    for _ in range(2):
        await dead.v1.calls.admit(prepared)
    assert dead.v1.requests.pending == 5
    assert await any_counters.get(debited_key(CUSTOMER)) == 7 * PRICE

    survivor = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    await survivor.v1.holds.start(survivor.v1.requests.publish)  # notes the missing lease
    try:
        assert survivor.publisher.events("requests") == []
        assert await survivor.v1.holds.recover() == 7  # missing at a second sweep: dead
        events = survivor.publisher.events("requests")
        assert len(events) == 5
        assert all(e.request.price == str(PRICE) for e in events)  # type: ignore[attr-defined]
        assert await any_counters.get(debited_key(CUSTOMER)) == 5 * PRICE
        assert await survivor.count(TOTAL) == 5
        assert await any_counters.get(hot_key(CUSTOMER)) == FUNDS - 5 * PRICE
        assert await any_counters.holds("v1:holds") == []
        assert await survivor.v1.holds.recover() == 0
    finally:
        await survivor.v1.holds.stop()


async def _a_peer_that_saw_a_live_gateway_with_a_call_in_flight(
    counters: CounterStore,
) -> tuple[Holds, Holds]:
    """A live gateway holding one admitted call, and a peer whose sweep found its lease;
    then the lease is gone (Redis restarted empty, say)."""
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    live = gateway(counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    await live.v1.holds.start(live.v1.requests.publish)
    prepared = await live.v1.calls.prepare("/v1/helloworld/call", "helloworld/call", KEY)
    await live.v1.calls.admit(prepared)
    peer = gateway(counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    await peer.v1.holds.start(peer.v1.requests.publish)  # finds the live one's lease
    await counters.delete(LEASE_PREFIX + live.v1.holds.instance)
    return live.v1.holds, peer.v1.holds


async def test_a_gateway_whose_lease_vanished_keeps_its_calls_if_it_writes_it_again(
    any_counters: CounterStore,
) -> None:
    live, peer = await _a_peer_that_saw_a_live_gateway_with_a_call_in_flight(any_counters)
    try:
        assert await peer.recover() == 0  # a first sweep only notes the missing lease
        await live.start(lambda envelopes: asyncio.sleep(0))  # writes its lease again
        assert await peer.recover() == 0
        assert await peer.recover() == 0
        assert len(await any_counters.holds("v1:holds")) == 1
        assert await any_counters.get(debited_key(CUSTOMER)) == PRICE
    finally:
        await live.stop()
        await peer.stop()


async def test_a_gateway_whose_lease_stays_missing_is_recovered_at_the_second_sweep(
    any_counters: CounterStore,
) -> None:
    live, peer = await _a_peer_that_saw_a_live_gateway_with_a_call_in_flight(any_counters)
    await live.stop()  # and never writes its lease again
    await any_counters.delete(LEASE_PREFIX + live.instance)
    try:
        assert await peer.recover() == 0
        assert await peer.recover() == 1  # released: it was never answered
        assert await any_counters.holds("v1:holds") == []
        assert await any_counters.get(debited_key(CUSTOMER)) == 0
    finally:
        await peer.stop()


async def test_a_call_admitted_after_a_lost_lease_is_kept_by_a_peer_that_never_met_its_gateway(
    any_counters: CounterStore,
) -> None:
    """Redis restarted empty: the live gateway's next call is in the new book before its
    lease is written again, and the peer's sweep finds it first. The peer had no earlier
    sight of that gateway (its sweeps found none of its holds), so nothing but the missing
    lease speaks for its death."""
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    live = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    peer = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    await live.v1.holds.start(live.v1.requests.publish)
    await peer.v1.holds.start(peer.v1.requests.publish)  # the book is empty
    await any_counters.delete(LEASE_PREFIX + live.v1.holds.instance)
    prepared = await live.v1.calls.prepare("/v1/helloworld/call", "helloworld/call", KEY)
    await live.v1.calls.admit(prepared)
    try:
        assert await peer.v1.holds.recover() == 0
        await live.v1.holds.start(live.v1.requests.publish)  # writes its lease again
        assert await peer.v1.holds.recover() == 0
        assert await peer.v1.holds.recover() == 0
        assert len(await any_counters.holds("v1:holds")) == 1
        assert await any_counters.get(debited_key(CUSTOMER)) == PRICE
    finally:
        await live.v1.holds.stop()
        await peer.v1.holds.stop()


class LateAdmission:
    """The counter store losing the first admission's reply before running it: the
    admission then runs when the test says, after the gateway gave up on it."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner
        self.delayed: list[AdmissionRequest] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        if not self.delayed:
            self.delayed = list(requests)
            raise Unavailable("counters", "Counter store unavailable")
        return await self._inner.admit_many(requests)


async def test_an_admission_that_runs_after_its_release_is_released_by_the_next_sweeps(
    any_counters: CounterStore,
) -> None:
    late = LateAdmission(any_counters)
    gw = gateway(
        late,  # type: ignore[arg-type]
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": PRICE})),
        balances={CUSTOMER: FUNDS},
    )
    holds = gw.v1.holds
    await gw.balances.load(CUSTOMER)
    async with gw.http() as client:
        lost = await client.post("/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH)
        assert lost.status_code == 503, lost.text
        # Its release runs in the background, finds nothing to release, and is done.
        async with asyncio.timeout(10):
            while holds.unreleased:
                await asyncio.sleep(0.01)
        # Now the admission runs in the store: it reserves and writes its hold.
        [decision] = await any_counters.admit_many(late.delayed)
        assert decision.admitted
        assert await any_counters.get(debited_key(CUSTOMER)) == PRICE
        for _ in range(2):
            response = await client.post(
                "/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH
            )
            assert response.status_code == 200, response.text
    assert len(await gw.events()) == 2  # published, their holds settled

    assert await holds.recover() == 0  # a first sweep only notes the orphan
    assert await holds.recover() == 1

    charged, monthly, events = await _books(gw, any_counters)
    assert (charged, monthly, events) == (2 * PRICE, 2, 2)
    assert await any_counters.get(hot_key(CUSTOMER)) == FUNDS - 2 * PRICE
    assert await any_counters.holds("v1:holds") == []


async def test_own_served_calls_whose_events_wait_are_published_by_the_sweeps_once(
    any_counters: CounterStore,
) -> None:
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    gw = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    holds = gw.v1.holds
    published: list[str] = []

    async def republish(envelopes: Sequence[Envelope]) -> None:
        published.extend(envelope.id for envelope in envelopes)

    await holds.start(republish)
    try:
        async with gw.http() as client:
            response = await client.post(
                "/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH
            )
            assert response.status_code == 200, response.text
        # The request log has not published it (its publisher is down, say): the hold waits.
        assert gw.v1.requests.pending == 1
        assert await holds.recover() == 0
        assert await holds.recover() == 1
        assert await holds.recover() == 0
    finally:
        await holds.stop()
    assert len(published) == 1
    assert await any_counters.holds("v1:holds") == []
    assert await any_counters.get(debited_key(CUSTOMER)) == PRICE


async def test_a_recovery_whose_publisher_fails_leaves_the_hold_and_starts_anyway(
    any_counters: CounterStore,
) -> None:
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    dead = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    async with dead.http() as client:
        response = await client.post("/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH)
        assert response.status_code == 200, response.text
    assert dead.v1.requests.pending == 1  # dies before publishing

    failing = True
    published: list[str] = []

    async def republish(envelopes: Sequence[Envelope]) -> None:
        if failing:
            raise RuntimeError("event store down")
        published.extend(envelope.id for envelope in envelopes)

    survivor = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    await survivor.v1.holds.start(republish)
    try:
        assert len(await any_counters.holds("v1:holds")) == 1
        failing = False
        assert await survivor.v1.holds.recover() == 1
    finally:
        await survivor.v1.holds.stop()
    assert len(published) == 1
    assert await any_counters.holds("v1:holds") == []
    assert await any_counters.get(debited_key(CUSTOMER)) == PRICE


async def test_finish_all_finishes_holds_whatever_their_lease(
    any_counters: CounterStore,
) -> None:
    """The one process holding the database (m3o serve, which keeps no holds) finishes
    what an earlier version left, even with its lease still running."""
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    dead = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})

    async def never(envelopes: Sequence[Envelope]) -> None:
        raise AssertionError("nothing to recover yet")

    await dead.v1.holds.start(never)  # its lease is written and live
    await dead.v1.holds.stop()
    async with dead.http() as client:
        response = await client.post("/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH)
        assert response.status_code == 200, response.text
    assert dead.v1.requests.pending == 1  # dies before publishing
    assert len(await any_counters.holds("v1:holds")) == 1

    published: list[str] = []

    async def republish(envelopes: Sequence[Envelope]) -> None:
        published.extend(envelope.id for envelope in envelopes)

    assert await Holds(any_counters).finish_all(republish) == 1
    assert len(published) == 1
    assert await any_counters.holds("v1:holds") == []
    assert await any_counters.get(debited_key(CUSTOMER)) == PRICE


async def test_an_event_recovered_from_a_dead_gateways_hold_keeps_its_trace_context(
    any_counters: CounterStore, spans: InMemorySpanExporter
) -> None:
    catalog = Catalog(hello_entry(pricing={"Helloworld.Call": PRICE}))
    dead = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    async with dead.http() as client:
        response = await client.post("/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH)
        assert response.status_code == 200, response.text
    assert dead.v1.requests.pending == 1  # dies before publishing
    [call] = [s for s in spans.get_finished_spans() if s.name.startswith("POST /v1/")]
    assert call.context is not None

    published: list[Envelope] = []

    async def republish(envelopes: Sequence[Envelope]) -> None:
        published.extend(envelopes)

    survivor = gateway(any_counters, catalog=catalog, balances={CUSTOMER: FUNDS})
    await survivor.v1.holds.start(republish)
    await survivor.v1.holds.recover()
    await survivor.v1.holds.stop()
    [event] = published
    ids = f"00-{call.context.trace_id:032x}-{call.context.span_id:016x}-"
    assert event.traceparent.startswith(ids)


class CountingCommits:
    """The counter store, counting ``commit_many`` round trips; failing them on demand."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner
        self.commits: list[int] = []
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_many(self, commits: Sequence[tuple[Hold, str]]) -> list[bool]:
        self.commits.append(len(commits))
        if self.failing:
            raise Unavailable("counters", "Counter store unavailable")
        return await self._inner.commit_many(commits)


async def test_calls_finishing_together_commit_in_one_round_trip(
    any_counters: CounterStore,
) -> None:
    counting = CountingCommits(any_counters)
    holds = Holds(counting)  # type: ignore[arg-type]
    await any_counters.set_counter_if_absent(hot_key(CUSTOMER), FUNDS)
    requests = [
        call(
            rate_limit=1000,
            price=PRICE,
            free_quota=0,
            balance_key=hot_key(CUSTOMER),
            debited_key=debited_key(CUSTOMER),
            hold=holds.new(),
        )
        for _ in range(10)
    ]
    await any_counters.admit_many(requests[:9])  # the last one was never admitted
    event = Envelope.wrap("requests", Event(type=EventType.EventTypeRequest))
    found = await asyncio.gather(*(holds.commit_soon(r.hold, event) for r in requests if r.hold))
    assert found == [True] * 9 + [False]
    assert counting.commits == [10]

    counting.failing = True
    again = await asyncio.gather(
        *(holds.commit_soon(r.hold, event) for r in requests[:3] if r.hold),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, Unavailable) for outcome in again)
    assert counting.commits == [10, 3]


@pytest.mark.parametrize("step", ["settle", "settle_lost_reply"])
async def test_a_settle_that_fails_keeps_the_charge_and_is_done_later(
    any_counters: CounterStore, step: str
) -> None:
    broken = BrokenAt(any_counters, step)
    gw = gateway(
        broken,  # type: ignore[arg-type]
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": PRICE})),
        balances={CUSTOMER: FUNDS},
    )
    async with gw.http() as client:
        for _ in range(3):
            response = await client.post(
                "/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH
            )
            assert response.status_code == 200, response.text
    assert await gw.v1.requests.flush()  # published; the settle failed
    assert broken.step == ""

    charged, monthly, events = await _books(gw, any_counters)  # the next flush settles
    assert (charged, monthly, events) == (3 * PRICE, 3, 3)
    assert await any_counters.holds("v1:holds") == []


class HeldCommits:
    """The counter store holding every ``commit_many`` until the test opens it."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner
        self.open = asyncio.Event()
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_many(self, commits: Sequence[tuple[Hold, str]]) -> list[bool]:
        self.waiting += len(commits)
        await self.open.wait()
        self.waiting -= len(commits)
        return await self._inner.commit_many(commits)


async def test_a_call_is_answered_before_its_commit_and_a_graceful_stop_commits_it(
    any_counters: CounterStore,
) -> None:
    held = HeldCommits(any_counters)
    gw = gateway(
        held,  # type: ignore[arg-type]
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": PRICE})),
        balances={CUSTOMER: FUNDS},
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw")
    async with client, asyncio.timeout(10):
        response = await client.post("/v1/helloworld/call", json={"name": "Alice"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["X-M3O-Price"] == str(PRICE)
    # The answer did not wait for its commit: still under way, nothing published yet.
    async with asyncio.timeout(10):
        while held.waiting == 0:
            await asyncio.sleep(0.01)
    assert gw.v1.requests.pending == 0
    assert len(await any_counters.holds("v1:holds")) == 1

    # A graceful stop waits for the commit, then publishes and settles.
    held.open.set()
    for hook in gw.v1.on_shutdown:
        await hook()
    assert [event.request.price for event in gw.publisher.events("requests")] == [str(PRICE)]
    assert await any_counters.get(debited_key(CUSTOMER)) == PRICE
    assert await gw.count(TOTAL) == 1
    assert await any_counters.holds("v1:holds") == []


async def test_a_server_stream_whose_commit_fails_ends_normally_and_is_not_charged(
    counters: CounterStore,
) -> None:
    counting = CountingCommits(counters)
    counting.failing = True
    gw = gateway(
        counting,  # type: ignore[arg-type]
        catalog=Catalog(hello_entry(pricing={"Helloworld.Stream": PRICE})),
        balances={CUSTOMER: FUNDS},
    )
    async with (
        serve_app(gw.app) as address,
        connect(f"ws://{address}/v1/helloworld/stream", additional_headers=AUTH) as ws,
    ):
        await ws.send(json.dumps({"name": "Ann", "messages": 2}))
        frames = [await ws.recv(), await ws.recv()]
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert [json.loads(frame) for frame in frames] == [{"message": "Hello Ann"}] * 2
    assert ws.close_code == 1000
    assert counting.commits == [1]

    charged, monthly, events = await _books(gw, counters)
    assert (charged, monthly, events) == (0, 0, 0)
    assert await counters.get(hot_key(CUSTOMER)) == FUNDS
    assert await counters.holds("v1:holds") == []
