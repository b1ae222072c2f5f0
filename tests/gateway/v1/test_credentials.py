"""Where a key is read from, and how long its record is trusted."""

from __future__ import annotations

import asyncio
import base64

import pytest

from gateway.v1.support import KEY, Keys, key_record, until_true
from m3o.gateway.v1.credentials import KeyCache, key_from_headers, websocket_protocol
from m3o.runtime.errors import Forbidden, Unauthorized, Unavailable
from m3o.services.v1 import KeyRecord


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("headers", "websocket", "key"),
    [
        ({"authorization": f"Bearer {KEY}"}, False, KEY),
        ({"authorization": f"bearer   {KEY}  "}, False, KEY),
        ({"authorization": _basic(f"user:{KEY}")}, False, KEY),
        ({"authorization": _basic(f":{KEY}")}, False, KEY),
        ({"authorization": _basic(f"{KEY}:")}, False, KEY),  # curl -u KEY:
        ({"authorization": _basic(f"other:{KEY}")}, False, KEY),  # the password wins
        ({"authorization": _basic(":")}, False, None),
        ({"authorization": _basic(KEY)}, False, None),
        ({"authorization": "Basic %%%"}, False, None),
        ({"authorization": f"Digest {KEY}"}, False, None),
        ({"sec-websocket-protocol": KEY}, False, None),
        ({"sec-websocket-protocol": KEY}, True, KEY),
        ({"sec-websocket-protocol": f"{KEY}, chat"}, True, KEY),
        ({"authorization": "Bearer other", "sec-websocket-protocol": KEY}, True, "other"),
        ({}, True, None),
    ],
)
def test_key_is_read_from_bearer_basic_or_the_websocket_protocol(
    headers: dict[str, str], websocket: bool, key: str | None
) -> None:
    assert key_from_headers(headers, websocket=websocket) == key


def test_websocket_protocol_is_the_first_offered() -> None:
    assert websocket_protocol({"sec-websocket-protocol": " a , b"}) == "a"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_key_stops_working_once_its_record_expires_from_the_cache() -> None:
    keys, clock = Keys(), Clock()
    cache = KeyCache(keys, clock=clock)
    assert (await cache.authenticate(KEY)).id == "key-1"
    del keys.records[KEY]
    clock.now += 0.5
    assert (await cache.authenticate(KEY)).id == "key-1"
    clock.now += 0.6
    with pytest.raises(Unauthorized):
        await cache.authenticate(KEY)
    assert keys.lookups == 2


async def test_a_block_takes_effect_within_the_ttl() -> None:
    keys, clock = Keys(), Clock()
    cache = KeyCache(keys, clock=clock)
    await cache.authenticate(KEY)
    keys.records[KEY] = key_record(blocked="stop")
    clock.now += 1.01
    assert (await cache.authenticate(KEY)).blocked


async def test_unknown_keys_are_remembered_too() -> None:
    keys = Keys()
    cache = KeyCache(keys, clock=Clock())
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await cache.authenticate("m3o_made_up")
    assert keys.lookups == 1


async def test_cache_is_bounded() -> None:
    keys = Keys()
    cache = KeyCache(keys, max_entries=4, clock=Clock())
    for n in range(10):
        assert await cache.find(f"m3o_{n}") is None
    assert len(cache) <= 4


async def test_missing_key_is_unauthorized_without_a_lookup() -> None:
    keys = Keys()
    with pytest.raises(Unauthorized) as raised:
        await KeyCache(keys).authenticate(None)
    assert raised.value == Unauthorized("v1", "Unauthorized")
    assert keys.lookups == 0


class BrokenKeys:
    def __init__(self, error: Exception) -> None:
        self._error = error

    async def find(self, api_key: str) -> None:
        raise self._error


@pytest.mark.parametrize(
    "error",
    [
        Unavailable("counters", "Counter store unavailable"),
        Forbidden("v1.resolvekey", "Forbidden"),
    ],
)
async def test_a_key_that_cannot_be_checked_now_is_unavailable(error: Exception) -> None:
    with pytest.raises(Unavailable) as raised:
        await KeyCache(BrokenKeys(error)).authenticate(KEY)
    assert raised.value == Unavailable("v1", "Service unavailable, please try again")


class SlowKeys(Keys):
    """Keys whose lookups wait until ``answer`` is set; fails them with ``error`` if set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.error: Exception | None = None

    async def find(self, api_key: str) -> KeyRecord | None:
        self.lookups += 1
        await self.answer.wait()
        if self.error is not None:
            raise self.error
        return self.records.get(api_key)


async def test_calls_arriving_while_a_key_is_read_wait_for_that_one_read() -> None:
    keys, clock = SlowKeys(), Clock()
    cache = KeyCache(keys, clock=clock)
    calls = [asyncio.ensure_future(cache.authenticate(KEY)) for _ in range(20)]
    await until_true(lambda: keys.lookups == 1)
    keys.answer.set()
    assert {record.id for record in await asyncio.gather(*calls)} == {"key-1"}
    assert keys.lookups == 1
    # once the entry lapses, the next calls read the key again, once
    clock.now += 1.5
    keys.records[KEY] = key_record(blocked="stop")
    records = await asyncio.gather(*(cache.find(KEY) for _ in range(5)))
    assert all(record is not None and record.blocked for record in records)
    assert keys.lookups == 2


async def test_a_failed_shared_read_fails_its_waiters_and_the_next_call_reads_again() -> None:
    keys = SlowKeys()
    cache = KeyCache(keys, clock=Clock())
    keys.error = Unavailable("counters", "Counter store unavailable")
    calls = [asyncio.ensure_future(cache.authenticate(KEY)) for _ in range(3)]
    await until_true(lambda: keys.lookups == 1)
    keys.answer.set()
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        assert outcome == Unavailable("v1", "Service unavailable, please try again")
    keys.error = None
    assert (await cache.authenticate(KEY)).id == "key-1"
    assert keys.lookups == 2


async def test_a_waiter_cancelled_leaves_the_read_to_the_others() -> None:
    keys = SlowKeys()
    cache = KeyCache(keys, clock=Clock())
    first, second = (asyncio.ensure_future(cache.authenticate(KEY)) for _ in range(2))
    await until_true(lambda: keys.lookups == 1)
    first.cancel()
    keys.answer.set()
    assert (await second).id == "key-1"
    assert first.cancelled()
    assert keys.lookups == 1
