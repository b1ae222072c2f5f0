"""Served calls' holds finished into the request stream on Redis: each event appended once,
as its hold leaves the book with its charge kept; a released hold publishes nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from m3o.events.requests import Event, EventType, Request
from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Hold
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events.redis_served import RedisServedHolds
from runtime.counters_fixtures import call
from runtime.events_fixtures import unreachable_redis

BOOK = "v1:holds"
PRICE = 7
FUNDS = 100


def _event(topic: str, url: str) -> Envelope:
    request = Request(url=url, price=str(PRICE), request_id=url)
    return Envelope.wrap(topic, Event(type=EventType.EventTypeRequest, request=request))


async def _admitted(
    counters: RedisCounterStore, *ids: str
) -> list[tuple[AdmissionRequest, AdmissionDecision]]:
    await counters.set_counter_if_absent("balance", FUNDS)
    requests = [
        call(price=PRICE, free_quota=0, balance_key="balance", hold=Hold(BOOK, hold_id))
        for hold_id in ids
    ]
    decisions = await counters.admit_many(requests)
    assert all(decision.admitted for decision in decisions)
    return list(zip(requests, decisions, strict=True))


def _hold(request: AdmissionRequest) -> Hold:
    assert request.hold is not None
    return request.hold


async def _stream(redis: aioredis.Redis, topic: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await redis.xrange(f"m3o:events:{topic}")]


def _as_entry(envelope: Envelope) -> dict[bytes, bytes]:
    return {
        b"id": envelope.id.encode(),
        b"type": envelope.type_name.encode(),
        b"time": envelope.time.isoformat().encode(),
        b"payload": envelope.payload,
    }


@pytest.fixture
def counters(redis: aioredis.Redis) -> RedisCounterStore:
    return RedisCounterStore(redis)


async def test_served_holds_leave_the_book_as_their_events_enter_the_stream(
    counters: RedisCounterStore, redis: aioredis.Redis
) -> None:
    admitted = await _admitted(counters, "a.1", "a.2", "a.3")
    served = [(_hold(r), _event("requests", f"/v1/call/{n}")) for n, (r, _) in enumerate(admitted)]

    found = await RedisServedHolds(counters).settle_served(served)

    assert found == [True, True, True]
    assert await _stream(redis, "requests") == [_as_entry(event) for _, event in served]
    assert await counters.holds(BOOK) == []
    # The charges stay: the reservations made at admission are the debits.
    assert await counters.get("debited") == 3 * PRICE
    assert await counters.get("balance") == FUNDS - 3 * PRICE


async def test_a_released_hold_publishes_nothing_and_a_hold_is_published_once(
    counters: RedisCounterStore, redis: aioredis.Redis
) -> None:
    (kept, _), (released, decision) = await _admitted(counters, "a.1", "a.2")
    await counters.release(released, decision)
    served_holds = RedisServedHolds(counters)
    first = _event("requests", "/v1/call/1")

    found = await served_holds.settle_served(
        [(_hold(released), _event("requests", "/v1/call/2")), (_hold(kept), first)]
    )
    again = await served_holds.settle_served([(_hold(kept), _event("requests", "/v1/call/3"))])

    assert (found, again) == ([False, True], [False])
    assert await _stream(redis, "requests") == [_as_entry(first)]
    assert await counters.get("debited") == PRICE


async def test_one_settle_serves_several_topics_in_their_own_streams_in_order(
    counters: RedisCounterStore, redis: aioredis.Redis
) -> None:
    admitted = await _admitted(counters, "a.1", "a.2", "a.3")
    topics = ["requests", "other", "requests"]
    served: Sequence[tuple[Hold, Envelope]] = [
        (_hold(r), _event(topic, f"/v1/{n}"))
        for n, ((r, _), topic) in enumerate(zip(admitted, topics, strict=True))
    ]

    assert await RedisServedHolds(counters).settle_served(served) == [True, True, True]

    assert await _stream(redis, "requests") == [_as_entry(served[0][1]), _as_entry(served[2][1])]
    assert await _stream(redis, "other") == [_as_entry(served[1][1])]


async def test_an_unreachable_redis_is_unavailable() -> None:
    counters = RedisCounterStore(unreachable_redis(), timeout=2)
    served = [(Hold(BOOK, "a.1"), _event("requests", "/v1/call"))]

    with pytest.raises(Unavailable):
        await RedisServedHolds(counters).settle_served(served)


async def test_an_append_redis_refuses_leaves_its_hold_and_publishes_nothing(
    counters: RedisCounterStore, redis: aioredis.Redis
) -> None:
    """A script keeps what it wrote before it failed: an append Redis refuses (here the
    stream's key holds a string) ends the run with the holds of the calls it did not
    append still in the book, to be released (answered free)."""
    admitted = await _admitted(counters, "a.1", "a.2")
    await redis.set("m3o:events:requests", "not a stream")
    served = [(_hold(r), _event("requests", f"/v1/call/{n}")) for n, (r, _) in enumerate(admitted)]

    with capture_logs() as logs:
        found = await RedisServedHolds(counters).settle_served(served)

    assert found == [False, False]
    assert sorted(h.hold.id for h in await counters.holds(BOOK)) == ["a.1", "a.2"]
    [refused] = [e for e in logs if e["event"] == "events.served_append_refused"]
    assert refused["unpublished"] == 2
    assert "WRONGTYPE" in refused["error"]
