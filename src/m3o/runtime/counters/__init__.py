"""Counters and admission primitives shared across processes.

The interface every service sees; implementations live beside it
(``sqlite.py`` for the ``local`` profile, ``redis.py`` for ``platform``),
and one shared test suite (``tests/runtime/test_counters.py``) runs against both.

Every operation is atomic on its own. Keys are plain strings; services prefix them with
their own name (``signup:recover:<email>``). A missing or expired key reads as 0 / None.
Times are ``timedelta``; expiry is measured by the store's clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Held, Hold

__all__ = ["CounterStore", "RateDecision"]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one :meth:`CounterStore.hit`."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the current window ends."""


class CounterStore(Protocol):
    async def incr(self, key: str, amount: int = 1, *, ttl: timedelta | None = None) -> int:
        """Add ``amount`` (may be negative) and return the new value.

        ``ttl`` is applied when the increment creates the key; an existing key keeps its
        expiry.
        """
        ...

    async def incr_many(
        self, amounts: Mapping[str, int], *, ttl: timedelta | None = None
    ) -> dict[str, int]:
        """:meth:`incr` each key by its amount, all in one atomic step and one round trip
        (a batch of counts lands whole or not at all); the new values by key. ``ttl`` as
        for :meth:`incr`, for every key the step creates."""
        ...

    async def get(self, key: str) -> int:
        """The counter's value; 0 when missing or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[int]:
        """Values of ``keys`` in order, in one round trip."""
        ...

    async def delete(self, *keys: str) -> None:
        """Remove counters and values; missing keys are ignored."""
        ...

    async def set_value(self, key: str, value: str, *, ttl: timedelta | None = None) -> None:
        """Store a string (replacing any value and expiry)."""
        ...

    async def get_value(self, key: str) -> str | None:
        """The stored string; None when missing or expired."""
        ...

    async def set_if_absent(self, key: str, value: str, *, ttl: timedelta) -> bool:
        """Store ``value`` only if ``key`` holds nothing; True if it was stored."""
        ...

    async def hit(self, key: str, *, limit: int, window: timedelta) -> RateDecision:
        """Count one event in the current fixed window of ``key``.

        Exact across processes: never more than ``limit`` events are allowed per window.
        A refused hit does not use up the window.
        """
        ...

    async def incr_existing(self, key: str, amount: int) -> int | None:
        """Add ``amount`` to an existing counter and return the new value; None (and no
        write) when the key is missing or expired."""
        ...

    async def set_counter_if_absent(
        self, key: str, value: int, *, ttl: timedelta | None = None
    ) -> bool:
        """Create counter ``key`` holding ``value`` unless it exists; True if created."""
        ...

    async def set_counter(self, key: str, value: int, *, ttl: timedelta | None = None) -> None:
        """Make counter ``key`` hold ``value`` (replacing any value and expiry): a level
        measured elsewhere, such as the unit usage an API reports."""
        ...

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        """Decide and reserve one call atomically (see :mod:`m3o.runtime.counters.admission`)."""
        ...

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        """:meth:`admit` each request in order, in one round trip; each decision is atomic
        and sees the reservations of the requests before it."""
        ...

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        """Undo an admitted call's reservation (its counts and its debit); the rate hit
        stays. Releasing a refused decision does nothing. With a hold, only a reservation
        whose hold is still in its book is undone (and the hold removed): releasing twice,
        or releasing a call whose admission never ran, does nothing."""
        ...

    async def commit_many(self, commits: Sequence[tuple[Hold, str]]) -> list[bool]:
        """Mark each hold as served, writing its note (what the call's event needs), in one
        atomic step; for each, whether the hold was still there (False: it was released,
        the call must not be answered as charged)."""
        ...

    async def settle_many(self, holds: Sequence[Hold]) -> None:
        """Remove committed holds whose events are published (the charge stays)."""
        ...

    async def holds(self, book: str) -> list[Held]:
        """Every hold in ``book`` (crash recovery: a few hundred at most, calls in
        flight)."""
        ...

    async def ping(self) -> None:
        """Raise Unavailable when the store cannot be reached."""
        ...

    async def close(self) -> None: ...
