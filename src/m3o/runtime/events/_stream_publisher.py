"""Publishing what has already happened elsewhere straight to Redis Streams.

The transactional outbox exists to make an event commit with the database change it
describes. Some events describe no database change: the gateway's request events record
calls admitted in Redis and already answered. For those, writing the outbox row, then
relaying it (a select, an append, a delete) is pure cost on the hot path, so this publisher
appends them to their streams directly, one script run per batch.

Nothing is lost when Redis cannot take them: the batch goes into the outbox instead, and
the relay of any process delivers it once Redis is back. Each direct append is marked with
the event id, and those outbox rows carry the event id as theirs, so an event appended
before the failure was noticed is not appended again. The same event published again
(same id: a gateway recovering a crashed one's calls) is harmless: appended directly, its
marker skips it (for the relay's ``dedupe_ttl``; consumers with side effects deduplicate
by event id anyway); into the outbox, a row already waiting under its id keeps it there once.

Given a session, events go to the outbox in it as usual (they belong to that transaction).

:meth:`StreamFirstPublisher.spill` writes events to the outbox without trying the stream
first: the gateway's request log spills there what it cannot keep in memory while the
stream is unreachable (or too slow), and :meth:`StreamFirstPublisher.waiting` says how
many events of a topic wait there.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.events._outbox import Envelope, EnvelopePublisher
from m3o.runtime.events._relay import Relay
from m3o.runtime.events.tables import outbox
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction

__all__ = ["StreamFirstPublisher"]

_log = get_logger(__name__)


class StreamFirstPublisher(EnvelopePublisher):
    """A :class:`~m3o.runtime.events.Publisher`: straight to the stream, else the outbox.

    ``relay`` appends and writes the outbox rows; the outbox is emptied by the relay the
    process's event bus runs (within its poll interval).
    """

    def __init__(self, sessions: SessionFactory, relay: Relay) -> None:
        self._sessions = sessions
        self._relay = relay

    async def _record(
        self, topic: str, envelopes: list[Envelope], session: AsyncSession | None
    ) -> None:
        if session is not None:
            await self._relay.write(session, envelopes)
            return
        try:
            await self._relay.append_now(envelopes)
        except (RedisError, OSError, TimeoutError) as exc:
            _log.warning(
                "events.stream_unavailable",
                topic=topic,
                events=len(envelopes),
                error=type(exc).__name__,
                fallback="outbox",
            )
            async with transaction(self._sessions) as own:
                unsent = await _not_in_outbox(own, envelopes)
                if unsent:
                    await self._relay.write_unsent(own, unsent)

    async def spill(self, envelopes: Sequence[Envelope]) -> None:
        """Write ``envelopes`` to the outbox, one transaction, keeping their ids (an id
        already waiting there, or already appended to its stream, is relayed once): the
        relay delivers them once Redis answers. Raises what the database raised."""
        async with transaction(self._sessions) as session:
            unsent = await _not_in_outbox(session, list(envelopes))
            if unsent:
                await self._relay.write_unsent(session, unsent)

    async def waiting(self, topic: str) -> int:
        """Events of ``topic`` waiting in the outbox for their stream."""
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.topic == topic)
            )
        return int(count or 0)


async def _not_in_outbox(session: AsyncSession, envelopes: list[Envelope]) -> list[Envelope]:
    """``envelopes`` less those the outbox already holds under their event id (published
    again, by a gateway recovering a crashed one, while the first copy still waits)."""
    ids = {envelope.id for envelope in envelopes}
    waiting = set(await session.scalars(select(outbox.c.id).where(outbox.c.id.in_(ids))))
    unsent: dict[str, Envelope] = {}
    for envelope in envelopes:
        if envelope.id not in waiting:
            unsent.setdefault(envelope.id, envelope)
    return list(unsent.values())
