"""Values the hot path looks up by key and keeps for a while (key records, tiers).

:class:`CachedLookups` keeps each value for ``ttl`` seconds and never serves one older:

- **one lookup per key at a time**: a call that finds no usable value while the key is
  being looked up waits for that lookup; a lookup that fails fails its waiters, and the
  next call looks up again. Under load every call in flight used to look the same key up
  anew once its value lapsed (measured on ``m3o serve``: 26 tier reads a second for one
  customer where one would do);
- **renewed ahead of time**: a value used once it is older than half its ``ttl`` is looked
  up again in the background, by the call that used it, while it is still served. A busy
  key's value is then renewed before it lapses and no call waits for it; a key used less
  often than that lapses and is looked up when next used, as before. A background lookup
  that fails leaves the value as it was, to lapse at its time;
- **bounded**: past ``max_entries`` values the oldest half is dropped.

Waiting for a lookup does not tie the lookup to the waiter: a waiter cancelled (its client
went away) leaves it to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["CachedLookups"]

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
V = TypeVar("V")

RENEW_AT = 0.5
"""The part of its ``ttl`` after which a value used is renewed in the background."""


def _seen(lookup: asyncio.Future[Any]) -> None:
    """A lookup's failure is its waiters' to report (a background one has none)."""
    if not lookup.cancelled():
        lookup.exception()


class CachedLookups(Generic[K, A, V]):
    """Values of ``lookup(argument)``, kept by ``key`` (see the module).

    ``key`` is what the value is kept under, ``argument`` what ``lookup`` is given: they
    differ where the argument must not be kept (the key cache keeps a digest of each API
    key, never the key)."""

    def __init__(
        self,
        lookup: Callable[[A], Awaitable[V]],
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float],
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._lookup = lookup
        self._ttl = ttl
        self._renew_after = ttl * RENEW_AT
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, float, V]] = {}
        """key -> (renew after, lapses at, value)."""
        self._looking: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: K, argument: A) -> V:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            if entry[0] <= now and key not in self._looking:
                self._start(key, argument, now)
            return entry[2]
        looking = self._looking.get(key)
        if looking is None:
            looking = self._start(key, argument, now)
        return await asyncio.shield(looking)

    def _start(self, key: K, argument: A, now: float) -> asyncio.Future[V]:
        looking = asyncio.ensure_future(self._look_up(key, argument, now))
        looking.add_done_callback(_seen)
        self._looking[key] = looking
        return looking

    async def _look_up(self, key: K, argument: A, now: float) -> V:
        try:
            value = await self._lookup(argument)
        finally:
            self._looking.pop(key, None)
        if self._ttl > 0:
            self._remember(key, now, value)
        return value

    def _remember(self, key: K, now: float, value: V) -> None:
        entries = self._entries
        entries.pop(key, None)
        if len(entries) >= self._max_entries:
            for old in list(entries)[: len(entries) // 2 + 1]:
                del entries[old]
        entries[key] = (now + self._renew_after, now + self._ttl, value)
