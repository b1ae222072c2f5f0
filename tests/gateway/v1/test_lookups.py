"""Values kept for a while: one lookup per key at a time, renewed in the background while
in use, never served past their ttl."""

from __future__ import annotations

import asyncio

import pytest

from gateway.v1.support import until_true
from m3o.gateway.v1.lookups import CachedLookups
from m3o.runtime.errors import Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """Answers ``value[key]``; while ``hold`` is clear, lookups wait for it; fails with
    ``error`` when set."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {"a": 1}
        self.lookups: list[str] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.error: Exception | None = None

    async def look_up(self, key: str) -> int:
        self.lookups.append(key)
        await self.hold.wait()
        if self.error is not None:
            raise self.error
        return self.values[key]


def _cache(source: Source, clock: Clock, max_entries: int = 100) -> CachedLookups[str, str, int]:
    return CachedLookups(source.look_up, ttl=1.0, max_entries=max_entries, clock=clock)


async def test_a_value_is_kept_for_its_ttl_and_never_served_past_it() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    assert await cache.get("a", "a") == 1
    source.values["a"] = 2
    clock.now += 0.3
    assert await cache.get("a", "a") == 1
    assert source.lookups == ["a"]
    clock.now += 0.8  # lapsed without a renewal in between: read before the answer
    assert await cache.get("a", "a") == 2
    assert source.lookups == ["a", "a"]


async def test_a_value_used_after_half_its_ttl_is_renewed_while_it_is_still_served() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    await cache.get("a", "a")
    source.values["a"] = 2
    source.hold.clear()
    clock.now += 0.6
    # The call does not wait for the renewal it started, and starts only one.
    assert await cache.get("a", "a") == 1
    assert await cache.get("a", "a") == 1
    await until_true(lambda: len(source.lookups) == 2)
    source.hold.set()
    async with asyncio.timeout(10):
        while await cache.get("a", "a") != 2:
            await asyncio.sleep(0)
    assert len(source.lookups) == 2
    # Past the time the first value lapsed: the renewed one counts its ttl from its read.
    clock.now += 0.45
    assert await cache.get("a", "a") == 2
    assert len(source.lookups) == 2


async def test_a_renewal_that_fails_leaves_the_value_to_lapse_at_its_time() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    await cache.get("a", "a")
    source.error = Unavailable("counters", "Counter store unavailable")
    clock.now += 0.6
    assert await cache.get("a", "a") == 1
    await until_true(lambda: len(source.lookups) == 2)
    assert await cache.get("a", "a") == 1  # renewed again: it failed
    await until_true(lambda: len(source.lookups) == 3)
    clock.now += 0.5
    with pytest.raises(Unavailable):
        await cache.get("a", "a")
    source.error = None
    assert await cache.get("a", "a") == 1


async def test_calls_that_miss_together_share_one_lookup_and_its_failure() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    source.hold.clear()
    source.error = Unavailable("counters", "Counter store unavailable")
    calls = [asyncio.ensure_future(cache.get("a", "a")) for _ in range(5)]
    await until_true(lambda: len(source.lookups) == 1)
    source.hold.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    source.error = None
    assert await cache.get("a", "a") == 1
    assert len(source.lookups) == 2


async def test_a_cancelled_waiter_leaves_the_lookup_to_the_others() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    source.hold.clear()
    first, second = (asyncio.ensure_future(cache.get("a", "a")) for _ in range(2))
    await until_true(lambda: len(source.lookups) == 1)
    first.cancel()
    source.hold.set()
    assert await second == 1
    assert first.cancelled()
    assert len(source.lookups) == 1


async def test_the_key_kept_and_the_argument_looked_up_may_differ() -> None:
    source, clock = Source(), Clock()
    cache = _cache(source, clock)
    assert await cache.get("digest-of-a", "a") == 1
    assert await cache.get("digest-of-a", "ignored once kept") == 1
    assert source.lookups == ["a"]


async def test_past_max_entries_the_oldest_half_is_dropped() -> None:
    source, clock = Source(), Clock()
    source.values = {str(n): n for n in range(10)}
    cache = _cache(source, clock, max_entries=4)
    for n in range(10):
        assert await cache.get(str(n), str(n)) == n
    assert 0 < len(cache) <= 4
    assert await cache.get("9", "9") == 9  # the newest is kept
    assert len(source.lookups) == 10


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        CachedLookups(Source().look_up, ttl=1.0, max_entries=0, clock=Clock())
