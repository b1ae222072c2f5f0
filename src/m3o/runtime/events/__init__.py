"""Events: publish through a transactional outbox, consume in groups with ack and retry.

This package's ``__init__`` is the interface every service sees. The two backends live
beside it, ``sqlite.py`` (the ``local`` profile) and ``redis.py`` (``platform``), and only
``m3o.platform`` imports them; the machinery they share (the consumer bus, the outbox, the
relay, joint acknowledgements, dead letters) is private to the package.

Publishing: ``await publisher.publish(TOPIC, event, session=session)`` writes the event in
the caller's transaction, so a change and its event are committed, or rolled back,
together. Without a session the event is written in a transaction of its own.

Consuming: a handler receives a :class:`Delivery`. Returning acknowledges it; raising
schedules a retry with exponential backoff; after the last attempt the event goes to the
dead-letter store, where operators can list and replay it. Delivery is at least once, so
handlers with side effects deduplicate by ``delivery.id``. Events of a topic are not
promised to arrive in order.

A batch handler (``bus.subscribe_batch``) receives the events claimed together, up to
``max_batch``, in one call, and the bus acknowledges them together: for consumers whose
work is one write for many events (counting calls, ``last_seen``, forwarding to an
analytics API). It returns the events that failed, by id, with their errors (each is
retried on its own schedule, as above); raising fails the whole batch.

A process owns one :class:`EventBus` (``sql_event_bus(engine)`` or
``redis_event_bus(engine, redis)``): services publish through ``bus.publisher``, consumers
are registered with ``bus.subscribe`` before ``bus.start()``, and ``bus.stop()`` shuts down
without losing anything. A group that does not exist yet is created by ``start()`` and
begins with the events published from then on, so start the bus before anything publishes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.events._outbox import Envelope, EnvelopePublisher, event_type_name

__all__ = [
    "BatchHandler",
    "DeadLetter",
    "DeadLetterHook",
    "DeadLettered",
    "Delivery",
    "Envelope",
    "EnvelopePublisher",
    "EventBus",
    "EventHandler",
    "Publisher",
    "event_type_name",
    "read_each",
]

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as a consumer receives it: the envelope and the encoded payload."""

    id: str
    topic: str
    type_name: str
    time: datetime
    payload: bytes
    attempt: int = 1
    traceparent: str = ""
    """The W3C trace context of the span the event was published in; empty when none."""
    message: Message | None = field(default=None, compare=False, repr=False)
    """The event itself, when it was handed over in this process by a publisher that gave
    it up (``Envelope.wrap(..., given=True)``): :meth:`decode` returns it."""

    def decode(self, message_type: type[M]) -> M:
        """The payload as a ``message_type``. An event handed over in this process may come
        as the publisher's own message, shared by every consumer group that gets it: read
        it, never change it."""
        message = self.message
        if message is not None and type(message) is message_type:
            return message
        return message_type.FromString(self.payload)


EventHandler = Callable[[Delivery], Awaitable[None]]

BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Mapping[str, Exception] | None]]
"""Handles the deliveries of a batch in one go; returns the failed ones' errors by event
id (None or empty: all handled)."""

T = TypeVar("T")


def read_each(
    deliveries: Sequence[Delivery], read: Callable[[Delivery], T]
) -> tuple[list[tuple[Delivery, T]], dict[str, Exception]]:
    """For a batch handler: ``read`` of each delivery, and the errors of those it raised
    on, by event id (return them from the handler: an unreadable event fails alone)."""
    done: list[tuple[Delivery, T]] = []
    failed: dict[str, Exception] = {}
    for delivery in deliveries:
        try:
            done.append((delivery, read(delivery)))
        except Exception as exc:  # noqa: BLE001 - handed back as that event's failure
            failed[delivery.id] = exc
    return done, failed


class Publisher(Protocol):
    async def publish(
        self, topic: str, event: Message, *, session: AsyncSession | None = None
    ) -> str:
        """Record ``event`` on ``topic`` (inside ``session``'s transaction if given).

        Returns the event id.
        """
        ...

    async def publish_many(
        self, topic: str, events: Sequence[Message], *, session: AsyncSession | None = None
    ) -> list[str]:
        """Record ``events`` on ``topic`` together, in order, all or none (inside
        ``session``'s transaction if given); one write however many there are.

        Returns the event ids.
        """
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a consumer group gave up on after its last attempt."""

    id: str
    event_id: str
    topic: str
    group: str
    type_name: str
    time: datetime
    payload: bytes
    attempts: int
    error: str
    """The last failure: exception type, message and traceback."""
    failed_at: datetime
    replayed_at: datetime | None = None
    """When an operator sent it back to its group; None while it waits."""


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """What a dead-letter hook is told: the group ``group`` gave up on an event."""

    topic: str
    group: str
    event_id: str
    type_name: str
    attempts: int
    error: str
    """The last failure, one line (the dead letter keeps the traceback)."""


DeadLetterHook = Callable[[DeadLettered], Awaitable[None]]


class EventBus(Protocol):
    """Publishing and consuming for one process."""

    @property
    def publisher(self) -> Publisher:
        """What services publish with (hand it to them as ``Dependencies.publisher``)."""
        ...

    def subscribe(
        self,
        topic: str,
        group: str,
        handler: EventHandler,
        *,
        max_attempts: int = 8,
        backoff_base: timedelta = timedelta(seconds=1),
        backoff_max: timedelta = timedelta(minutes=5),
        concurrency: int = 1,
        from_beginning: bool = False,
    ) -> None:
        """Have ``handler`` consume ``topic`` as a member of ``group``. Call before start.

        Every group gets every event; the consumers of one group (in this or other
        processes) share its events. A failing attempt ``n`` is retried after
        ``backoff_base * 2**(n-1)`` (plus up to 25% jitter, at most ``backoff_max``); after
        ``max_attempts`` the event becomes a dead letter. ``concurrency`` handlers of this
        subscription run at once. A group created by this call starts with the events
        published from then on, or with every retained event when ``from_beginning``.
        """
        ...

    def subscribe_batch(
        self,
        topic: str,
        group: str,
        handler: BatchHandler,
        *,
        max_batch: int = 64,
        linger: timedelta = timedelta(0),
        max_attempts: int = 8,
        backoff_base: timedelta = timedelta(seconds=1),
        backoff_max: timedelta = timedelta(minutes=5),
        from_beginning: bool = False,
    ) -> None:
        """As :meth:`subscribe`, but ``handler`` receives the events claimed together (at
        most ``max_batch``; no more than that are handled at once) in one call, and those
        it handled are acknowledged together. A claim that found fewer waits ``linger``
        and takes what arrived meanwhile into the same batch.

        Events the handler reports as failed (or every event of the batch, when it raises)
        are retried one by one, each after its own backoff, and dead-lettered after
        ``max_attempts``, as with :meth:`subscribe`; a retried event joins whatever batch
        claims it next. A copy of an event the subscription is handling or has just
        handled is acknowledged without being handed over.
        """
        ...

    def retire(self, topic: str, group: str) -> None:
        """Have ``group`` end as a group of ``topic`` when the bus starts: the events it has
        not handled yet are dropped and it gets no more. Call before start, for a consumer
        that is switched off (a log or stream would otherwise keep delivering to a group
        nobody reads). Nothing happens when the group does not exist; its dead letters
        stay; a later subscribe creates it anew. A failure is logged and the retirement
        tried again at the next start.
        """
        ...

    def on_dead_letter(self, hook: DeadLetterHook) -> None:
        """Have ``hook`` told of every event this bus's groups dead-letter, once stored (to
        alert operators). A hook that fails is logged; the dead letter stands."""
        ...

    async def start(self) -> None:
        """Create the groups and start consuming (and relaying, where there is a relay)."""
        ...

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully: fetch nothing more, let running handlers finish (``timeout``
        seconds, then cancel them; their events go back to the group unacknowledged), and
        relay what is still pending.
        """
        ...

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once every event published so far to a subscribed topic has been handled
        (acknowledged or dead-lettered) by this bus's groups; TimeoutError otherwise.
        """
        ...

    async def dead_letters(
        self,
        *,
        topic: str | None = None,
        group: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, newest first (only those not replayed unless asked)."""
        ...

    async def replay_dead_letter(self, dead_letter_id: str) -> None:
        """Send a dead letter back to its group (only that group) as a fresh first attempt.

        NotFound for an unknown id, Conflict when it was already replayed.
        """
        ...
