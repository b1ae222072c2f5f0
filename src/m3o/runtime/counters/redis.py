"""The counter store on Redis: the ``platform`` profile's, shared by every process.

Every operation is one round trip: a single command, or a Lua script where a read and a
write must happen together (``incr`` with a TTL, ``hit``, an admission: see
:mod:`m3o.runtime.counters.admission_redis`; ``admit_many`` pipelines its scripts). Every
call runs under a deadline, and a Redis that cannot be reached (refused, reset, timed out) becomes
``Unavailable("counters", "Counter store unavailable")``, so callers decide to fail open or
closed instead of hanging.

The client passed in must have socket timeouts (``socket_timeout``,
``socket_connect_timeout``); :func:`redis_counter_store` makes one that does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from m3o.runtime.counters import RateDecision
from m3o.runtime.counters.admission import (
    AdmissionDecision,
    AdmissionRequest,
    Held,
    Hold,
    held_from_record,
)
from m3o.runtime.counters.admission_redis import (
    ADMIT_MANY,
    COMMIT_MANY,
    RELEASE,
    AdmissionPacker,
    decision_from_reply,
    release_arguments,
)
from m3o.runtime.errors import Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.store.redis import redis_client, reply_text
from m3o.runtime.store.redis_direct import DirectCommands

__all__ = ["RedisCounterStore", "redis_counter_store"]

log = get_logger(__name__)

DEFAULT_TIMEOUT = 1.0
"""Seconds one operation may take, waiting and connecting included, before it is
Unavailable."""
DEFAULT_MAX_IN_FLIGHT = 64
"""Operations of one store sent at once; more wait their turn (under their deadline)
rather than exhaust the client's connection pool, which refuses past its size."""

# KEYS[1] counter; ARGV[1] amount, ARGV[2] ttl in ms. The TTL is set only when the
# increment creates the key: an existing key keeps its expiry (or its lack of one).
_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

# KEYS counters; ARGV[1] ttl in ms (0: none), ARGV[2..] their amounts. As _INCR for each
# key, in one script run; returns the new values in KEYS' order.
_INCR_MANY = """
local ttl = tonumber(ARGV[1])
local values = {}
for i, key in ipairs(KEYS) do
  local created = redis.call('EXISTS', key) == 0
  values[i] = redis.call('INCRBY', key, ARGV[i + 1])
  if created and ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
end
return values
"""

# KEYS[1] window counter; ARGV[1] limit, ARGV[2] window in ms. Returns {allowed, count,
# ms left}. A full window is not touched, so refused hits do not use it up; a window
# starts with its first hit, and a key without expiry (not written here) starts one too.
_HIT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('SET', KEYS[1], 1, 'PX', window)
  return {1, 1, window}
end
local count = tonumber(redis.call('GET', KEYS[1]))
if count >= limit then
  return {0, count, left}
end
return {1, redis.call('INCR', KEYS[1]), left}
"""


# KEYS[1] counter; ARGV[1] amount. Adds only to a key that exists; nil (None) otherwise.
_INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


class RedisCounterStore:
    """:class:`~m3o.runtime.counters.CounterStore` on Redis.

    ``client`` must have socket timeouts, and a connection pool of at least twice
    ``max_in_flight`` connections: a batch's admissions, commits and settles run on up to
    ``max_in_flight`` connections taken from it and kept
    (:class:`~m3o.runtime.store.redis_direct.DirectCommands`), the other operations on
    pooled ones (redis-py's default pool holds 100). Every key is stored
    under ``prefix``. ``timeout`` bounds each operation. ``owns_client``: :meth:`close`
    closes the client too (set by :func:`redis_counter_store`; a client passed in stays the
    caller's).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "m3o:",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        self._owns_client = owns_client
        self._incr_script = client.register_script(_INCR)
        self._incr_many_script = client.register_script(_INCR_MANY)
        self._hit_script = client.register_script(_HIT)
        self._incr_existing_script = client.register_script(_INCR_EXISTING)
        self._admit_many_script = client.register_script(ADMIT_MANY)
        self._release_script = client.register_script(RELEASE)
        self._commit_many_script = client.register_script(COMMIT_MANY)
        self._admissions = AdmissionPacker(self._admit_many_script.sha, self._key, _ms)
        self._direct = DirectCommands(client)
        """The hot path's operations (a batch's admissions, commits and settles): at most
        ``max_in_flight`` at once, each on a connection of its own."""

    def _key(self, key: str) -> str:
        return self._prefix + key

    @asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        """A deadline for one operation; an unreachable Redis becomes Unavailable."""
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                yield
        except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
            log.warning("counter store unavailable", error=str(exc) or type(exc).__name__)
            raise Unavailable("counters", "Counter store unavailable") from exc

    async def incr(self, key: str, amount: int = 1, *, ttl: timedelta | None = None) -> int:
        async with self._call():
            if ttl is None:
                value: Any = await self._client.incrby(self._key(key), amount)
            else:
                value = await self._incr_script(keys=[self._key(key)], args=[amount, _ms(ttl)])
        return int(value)

    async def incr_many(
        self, amounts: Mapping[str, int], *, ttl: timedelta | None = None
    ) -> dict[str, int]:
        if not amounts:
            return {}
        keys = list(amounts)
        args = [0 if ttl is None else _ms(ttl), *(amounts[key] for key in keys)]
        async with self._call():
            values: list[Any] = await self._incr_many_script(
                keys=[self._key(key) for key in keys], args=args
            )
        return {key: int(value) for key, value in zip(keys, values, strict=True)}

    async def get(self, key: str) -> int:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        async with self._call():
            values: list[Any] = await self._client.mget([self._key(k) for k in keys])
        return [0 if value is None else int(value) for value in values]

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        async with self._call():
            await self._client.delete(*(self._key(k) for k in keys))

    async def set_value(self, key: str, value: str, *, ttl: timedelta | None = None) -> None:
        expiry = None if ttl is None else _ms(ttl)
        async with self._call():
            await self._client.set(self._key(key), value, px=expiry)

    async def get_value(self, key: str) -> str | None:
        async with self._call():
            value: Any = await self._client.get(self._key(key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def set_if_absent(self, key: str, value: str, *, ttl: timedelta) -> bool:
        async with self._call():
            stored: Any = await self._client.set(self._key(key), value, px=_ms(ttl), nx=True)
        return bool(stored)

    async def incr_existing(self, key: str, amount: int) -> int | None:
        async with self._call():
            value: Any = await self._incr_existing_script(keys=[self._key(key)], args=[amount])
        return None if value is None else int(value)

    async def set_counter_if_absent(
        self, key: str, value: int, *, ttl: timedelta | None = None
    ) -> bool:
        expiry = None if ttl is None else _ms(ttl)
        async with self._call():
            stored: Any = await self._client.set(self._key(key), value, px=expiry, nx=True)
        return bool(stored)

    async def set_counter(self, key: str, value: int, *, ttl: timedelta | None = None) -> None:
        expiry = None if ttl is None else _ms(ttl)
        async with self._call():
            await self._client.set(self._key(key), value, px=expiry)

    async def hit(self, key: str, *, limit: int, window: timedelta) -> RateDecision:
        if limit < 0:
            raise ValueError("limit must not be negative")
        window_ms = _ms(window)
        if limit == 0:
            return RateDecision(False, 0, 0, window.total_seconds())
        async with self._call():
            allowed, count, left = await self._hit_script(
                keys=[self._key(key)], args=[limit, window_ms]
            )
        return RateDecision(
            allowed=bool(allowed),
            limit=limit,
            remaining=max(0, limit - int(count)),
            reset_after=max(0, int(left)) / 1000,
        )

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        return (await self.admit_many([request]))[0]

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        if not requests:
            return []
        # Every admission in one ADMIT_MANY script run, in order (a script Redis lost is
        # loaded again and run once more: nothing of it ran).
        packed = self._admissions.pack(requests)
        async with self._call():
            flat: list[Any] = await self._direct.run_packed_script(self._admit_many_script, packed)
        return [
            decision_from_reply(request, flat[5 * place : 5 * place + 5])
            for place, request in enumerate(requests)
        ]

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        if not decision.admitted:
            return
        keys, arguments = release_arguments(request, decision, self._key)
        async with self._call():
            await self._release_script(keys=keys, args=arguments)

    async def commit_many(self, commits: Sequence[tuple[Hold, str]]) -> list[bool]:
        if not commits:
            return []
        keys = [self._key(hold.book) for hold, _ in commits]
        arguments = [part for hold, note in commits for part in (hold.id, note)]
        async with self._call():
            found: list[Any] = await self._direct.run_script(
                self._commit_many_script, keys, arguments
            )
        return [bool(int(one)) for one in found]

    async def settle_many(self, holds: Sequence[Hold]) -> None:
        if not holds:
            return
        by_book: dict[str, list[str]] = {}
        for hold in holds:
            by_book.setdefault(self._key(hold.book), []).append(hold.id)
        async with self._call():
            for book, ids in by_book.items():
                await self._direct.execute("HDEL", book, *ids)

    def stored_key(self, key: str) -> str:
        """``key`` as Redis stores it (under the store's prefix), for a script given to
        :meth:`run_script` that touches the store's own keys (a book of holds)."""
        return self._key(key)

    def register_script(self, source: str) -> AsyncScript:
        """A Lua script for :meth:`run_script`."""
        return self._client.register_script(source)

    async def run_script(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[EncodableT]
    ) -> Any:
        """One run of ``script`` as the store's hot operations run: on a connection of its
        own, under the store's deadline, loaded first if Redis lost it; Unavailable when
        Redis cannot be reached. For operations that span the store's keys and others of
        the same Redis (see :mod:`m3o.runtime.events.redis_served`)."""
        async with self._call():
            return await self._direct.run_script(script, keys, args)

    async def holds(self, book: str) -> list[Held]:
        async with self._call():
            found: dict[Any, Any] = await self._client.hgetall(self._key(book))
        prefix = len(self._prefix)
        return [
            held_from_record(
                Hold(book, reply_text(hold_id)), reply_text(record), lambda k: k[prefix:]
            )
            for hold_id, record in found.items()
        ]

    async def ping(self) -> None:
        async with self._call():
            await self._client.ping()

    async def close(self) -> None:
        await self._direct.close()
        if self._owns_client:
            await self._client.aclose()


def redis_counter_store(
    url: str,
    *,
    prefix: str = "m3o:",
    timeout: float = DEFAULT_TIMEOUT,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> RedisCounterStore:
    """A store with its own client for ``url`` (``redis://host:port/db``), closed by
    :meth:`RedisCounterStore.close`.

    The client is :func:`~m3o.runtime.store.redis.redis_client`'s: sockets time out after
    ``timeout``; a connection Redis closed is replaced before use, so a restarted Redis
    does not fail the next call; a command whose connection failed is sent once more on a
    fresh one. A command that timed out is not repeated, because a retried INCR whose reply
    was late would count twice: the caller gets Unavailable and decides.
    """
    return RedisCounterStore(
        # Its hot operations keep up to max_in_flight connections of the pool as their own.
        redis_client(url, timeout=timeout, max_connections=2 * max_in_flight),
        prefix,
        timeout=timeout,
        max_in_flight=max_in_flight,
        owns_client=True,
    )


def _ms(duration: timedelta) -> int:
    """A positive duration in whole milliseconds (at least 1)."""
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    return max(1, round(duration.total_seconds() * 1000))
