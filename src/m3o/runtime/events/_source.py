"""What an event backend provides to the bus (``_bus.py``).

A backend is an :class:`EventSource`: it writes published events (``write``, used by the
bus's transactional publisher) and opens a :class:`Channel` per subscription, through which
this process's consumer fetches, acknowledges, retries and dead-letters events of one group.
Implementations: ``sqlite.py`` (local) and ``redis.py`` (platform).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.events import DeadLetter, Delivery
from m3o.runtime.events._outbox import Envelope

__all__ = ["Channel", "Claim", "EventSource"]


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery a channel handed out, with the backend's receipt to settle it by."""

    delivery: Delivery
    receipt: str


class Channel(Protocol):
    """One consumer group of one topic, as one consumer sees it."""

    async def setup(self, from_beginning: bool) -> None:
        """Create the group if it does not exist (idempotent)."""
        ...

    async def fetch(self, limit: int, wait: float) -> list[Claim]:
        """Up to ``limit`` deliveries: due retries, events other consumers abandoned, new
        events. With nothing ready, wait up to ``wait`` seconds (less when woken)."""
        ...

    async def ack(self, *claims: Claim) -> None:
        """Done with ``claims`` (one event's, or a batch's in one write)."""
        ...

    async def retry(self, claim: Claim, at: datetime, error: str) -> None:
        """Try the event again, not before ``at``."""
        ...

    async def dead_letter(self, claim: Claim, error: str) -> None:
        """Record the event as a dead letter of the group and acknowledge it."""
        ...

    async def release(self, claim: Claim) -> None:
        """Give an unhandled event back to the group for prompt redelivery."""
        ...

    def forget(self, claim: Claim) -> None:
        """Stop renewing the claim; its lease lapses and the group gets the event again."""
        ...

    async def renew(self) -> None:
        """Extend the leases of every event this consumer holds."""
        ...

    async def outstanding(self) -> int:
        """Events of the group not yet acknowledged or dead-lettered (anyone's)."""
        ...

    async def close(self) -> None:
        """Hand back what is held without running (waiting retries) on shutdown."""
        ...

    def wake(self) -> None:
        """Something was published: end a ``fetch`` wait early."""
        ...


class EventSource(Protocol):
    """An event backend: where events are written and how they are consumed."""

    async def write(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        """Write the events' rows (in ``session``'s transaction)."""
        ...

    def channel(self, topic: str, group: str, consumer: str) -> Channel: ...

    async def requeue(self, session: AsyncSession, letter: DeadLetter) -> None:
        """Queue a dead letter's event again for its group only (in ``session``)."""
        ...

    async def retire(self, topic: str, group: str) -> bool:
        """End ``group`` as a group of ``topic``: the events it has not handled are
        dropped and it gets no more. Whether it existed."""
        ...

    async def backlog(self) -> int:
        """Events committed but not yet consumable (an outbox not yet relayed)."""
        ...

    async def run(self, stopping: asyncio.Event) -> None:
        """Background work (relaying, pruning) until ``stopping`` is set."""
        ...

    async def flush(self) -> None:
        """Do now what ``run`` would do eventually (relay everything pending)."""
        ...

    def wake(self, topic: str) -> None: ...
