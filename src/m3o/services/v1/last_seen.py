"""``last_seen`` of keys, from requests/Request events, written in batches.

Every metered call publishes an event, so writing one row per event would cost the
database as much as the traffic. Instead, the events handled at the same time (the
consumer runs up to :data:`CONCURRENCY` at once) join one batch: the latest time per key,
written in one transaction after :data:`LINGER` or once :data:`MAX_BATCH` keys are waiting.
Each handler returns only when its batch is written, so an event is acknowledged only
once its time is stored, and a failed write fails every event of the batch (the bus
retries them).

Only ``last_seen`` is written, and only forward: a late or redelivered event never moves
it back, and never touches a key's status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from m3o.events import requests
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.v1 import records

__all__ = ["CONCURRENCY", "LINGER", "MAX_BATCH", "LastSeen"]

_log = get_logger(__name__)

CONCURRENCY = 256
"""Request events handled at once, the most that can share one batch."""
LINGER = 0.2
"""Seconds a batch waits for more events before it is written."""
MAX_BATCH = 500
"""Keys in a batch that make it be written at once."""


@dataclass
class _Batch:
    seen: dict[str, datetime] = field(default_factory=dict)
    written: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class LastSeen:
    """Consumes ``requests`` in the group ``v1-requests``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        linger: float = LINGER,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessions = sessions
        self._linger = linger
        self._max_batch = max_batch
        self._open: _Batch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def consumer(self) -> Consumer:
        return Consumer(requests.TOPIC, self.handle, concurrency=CONCURRENCY)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(requests.Event)
        if event.type != requests.EventType.EventTypeRequest:
            return
        key_id = event.request.api_key_id
        if not key_id:
            return
        batch = self._batch()
        known = batch.seen.get(key_id)
        if known is None or known < delivery.time:
            batch.seen[key_id] = delivery.time
        if len(batch.seen) >= self._max_batch:
            self._close(batch)
        # Shielded: a handler cancelled while waiting must not cancel the others' batch.
        await asyncio.shield(batch.written)

    async def flush(self) -> None:
        """Write the open batch now and wait for every write in progress (at shutdown)."""
        if self._open is not None:
            self._close(self._open)
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _batch(self) -> _Batch:
        if self._open is None:
            batch = self._open = _Batch()
            # Every waiter may be gone (cancelled) by the time a write fails.
            batch.written.add_done_callback(_retrieve)
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._close, batch)
        return self._open

    def _close(self, batch: _Batch) -> None:
        if self._open is not batch:
            return  # already closed by size
        self._open = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.create_task(self._write(batch), name="v1:last-seen")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, batch: _Batch) -> None:
        try:
            async with transaction(self._sessions) as session:
                await records.touch_last_seen(session, batch.seen)
        except Exception as exc:  # noqa: BLE001 - handed to every event of the batch, retried
            _log.warning("v1.last_seen_write_failed", keys=len(batch.seen), error=repr(exc))
            batch.written.set_exception(exc)
        else:
            batch.written.set_result(None)


def _retrieve(written: asyncio.Future[None]) -> None:
    if not written.cancelled():
        written.exception()
