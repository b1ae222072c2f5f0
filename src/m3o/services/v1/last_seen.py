"""``last_seen`` of keys, from requests/Request events, written in batches.

Every metered call publishes an event, so writing one row per event would cost the
database as much as the traffic. Instead the consumer is a batch consumer: the events
claimed together (up to :data:`MAX_BATCH`; a claim that found fewer waits :data:`LINGER`
for more) give the latest time per key, written in one transaction. The batch is
acknowledged only once its times are stored; a failed write fails every event of the
batch (the bus retries them), and an event that cannot be read fails alone.

Only ``last_seen`` is written, and only forward: a late or redelivered event never moves
it back, and never touches a key's status.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta

from m3o.events import requests
from m3o.runtime.events import Delivery, read_each
from m3o.runtime.service import BatchConsumer
from m3o.runtime.store import SessionFactory, in_one_transaction
from m3o.services.v1 import records

__all__ = ["LINGER", "MAX_BATCH", "LastSeen"]

_REQUEST = requests.EventType.EventTypeRequest
"""Read once: each lookup on the enum's wrapper runs Python code."""

MAX_BATCH = 256
"""The most request events whose times are written in one transaction."""
LINGER = timedelta(milliseconds=200)
"""How long a claim that found fewer than :data:`MAX_BATCH` events waits for more."""


class LastSeen:
    """Consumes ``requests`` in the group ``v1-requests``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        linger: timedelta = LINGER,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessions = sessions
        self._linger = linger
        self._max_batch = max_batch

    def consumer(self) -> BatchConsumer:
        return BatchConsumer(
            requests.TOPIC, self.handle, max_batch=self._max_batch, linger=self._linger
        )

    async def handle(self, deliveries: Sequence[Delivery]) -> dict[str, Exception]:
        """Move the batch's keys' ``last_seen`` forward; returns the events that cannot
        be read (failed alone)."""
        seen: dict[str, datetime] = {}
        read, unreadable = read_each(deliveries, _request_event)
        for delivery, event in read:
            key_id = event.request.api_key_id
            if event.type != _REQUEST or not key_id:
                continue
            known = seen.get(key_id)
            if known is None or known < delivery.time:
                seen[key_id] = delivery.time
        if seen:
            await in_one_transaction(  # SQLite: on the driver (see records)
                self._sessions,
                functools.partial(records.touch_last_seen_on_driver, seen=seen),
                functools.partial(records.touch_last_seen, seen=seen),
            )
        return unreadable


def _request_event(delivery: Delivery) -> requests.Event:
    return delivery.decode(requests.Event)
