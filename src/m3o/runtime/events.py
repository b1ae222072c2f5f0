"""Events: publish through a transactional outbox, consume in groups with ack and retry.

This module is the interface every service sees; the backends live beside it
(``event_log_sqlite.py`` for the ``local`` profile, ``event_log_redis.py`` for
``platform``).

Publishing: ``await publisher.publish(TOPIC, event, session=session)`` writes the event in
the caller's transaction, so a change and its event are committed, or rolled back,
together. Without a session the event is written in a transaction of its own.

Consuming: a handler receives a :class:`Delivery`. Returning acknowledges it; raising
schedules a retry with exponential backoff; after the last attempt the event goes to the
dead-letter store, where operators can list and replay it. Delivery is at least once, so
handlers with side effects deduplicate by ``delivery.id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Delivery", "EventHandler", "Publisher", "event_type_name"]

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

    def decode(self, message_type: type[M]) -> M:
        return message_type.FromString(self.payload)


EventHandler = Callable[[Delivery], Awaitable[None]]


class Publisher(Protocol):
    async def publish(
        self, topic: str, event: Message, *, session: AsyncSession | None = None
    ) -> str:
        """Record ``event`` on ``topic`` (inside ``session``'s transaction if given).

        Returns the event id.
        """
        ...


def event_type_name(event: Message) -> str:
    """The name of an event's ``type`` enum value (``EventTypeSignup``); "" if it has none."""
    field = event.DESCRIPTOR.fields_by_name.get("type")
    if field is None or field.enum_type is None:
        return ""
    value = field.enum_type.values_by_number.get(getattr(event, "type"))  # noqa: B009
    return value.name if value is not None else str(getattr(event, "type"))  # noqa: B009
