"""Deleting keys and changing their status: what RPCs and consumers share.

Deleting, in an order where a failure at any step leaves nothing a caller could still use
and a retry finishes the job:

1. the mirror entries go first: if the counter store cannot be reached nothing has
   changed and the caller gets an error (a revoked key must stop working within a
   second, which we could not promise);
2. the auth accounts (already gone counts as done): from here the keys cannot get a
   token for an upstream any more;
3. the rows, and one DeleteKey event each, in one transaction (the ids are remembered, so
   an import of M3O's keys never brings one back);
4. the mirror entries again, in case the gateway reloaded one in between.

Rolling a key (a new secret for the same key): the old mirror entry, then the row's hash
in one transaction, then the old entry again and the new one.

Changing status: the rows and one BlockKey / UnblockKey event per key that changed, in one
transaction; then the mirror entries are rewritten. Keys already in the wanted state are
left alone, without an event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.customers import TOPIC, EventType
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import NotFound
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.v1 import records
from m3o.services.v1.keys.events import key_event
from m3o.services.v1.keys.mirror import KeyMirror
from m3o.services.v1.records import KeyRow
from m3o.services.v1.view import KeyStatus

__all__ = ["KeyChanges", "Selection"]

_log = get_logger(__name__)

Selection = Callable[[AsyncSession], Awaitable[list[KeyRow]]]
"""Reads the keys an operation applies to, locking them (called inside its transaction)."""


class KeyChanges:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        mirror: KeyMirror,
        auth: AuthService,
        clock: Clock = utc_now,
    ) -> None:
        self._clock = clock
        self._sessions = sessions
        self._publisher = publisher
        self._mirror = mirror
        self._auth = auth

    async def roll(self, target: KeyRow, new_hash: str) -> KeyRow | None:
        """Give ``target`` (a row read by the caller) the hash of a new key: the old key
        stops working as a revoked one does. None when the key is gone.

        The old mirror entry goes first (unreachable counter store: nothing changed), then
        the row, then the old entry again (a reload in between) and the new one.
        """
        await self._mirror.remove(target.hash)
        async with transaction(self._sessions) as session:
            row = await records.find(session, target.id, lock=True)
            if row is None or not await records.save_hash(session, row.id, new_hash, legacy=False):
                return None
        await self._mirror.try_remove(row.id, row.hash)
        rolled = replace(row, hash=new_hash, legacy=False)
        await self._mirror.refresh([rolled.record])
        return rolled

    async def delete(
        self, targets: Sequence[KeyRow], *, caller_id: str, customer_id: str = ""
    ) -> list[KeyRow]:
        """Delete ``targets`` (rows read by the caller) and return those this call deleted.

        Raises the M3OError of a failed step; the keys are then all still listed, though
        some may no longer work, and calling again completes the deletion.
        """
        if not targets:
            return []
        await self._mirror.remove(*(row.hash for row in targets))
        for target in targets:
            with contextlib.suppress(NotFound):  # deleted by an earlier attempt
                await self._auth.delete(auth_pb.DeleteRequest(id=target.id))
        deleted: list[KeyRow] = []
        async with transaction(self._sessions) as session:
            for target in targets:
                row = await records.find(session, target.id, lock=True)
                if row is None:
                    continue  # deleted meanwhile, by another call that published its event
                deleted.append(row)
                event = key_event(
                    EventType.EventTypeDeleteKey, row, caller_id=caller_id, customer_id=customer_id
                )
                await self._publisher.publish(TOPIC, event, session=session)
            await records.remove(session, [row.id for row in deleted], when=self._clock())
        for row in deleted:
            await self._mirror.try_remove(row.id, row.hash)
        if deleted:
            _log.info("v1.keys_deleted", key_ids=[row.id for row in deleted], caller=caller_id)
        return deleted

    async def set_status(
        self,
        select: Selection,
        status: KeyStatus,
        message: str,
        *,
        caller_id: str,
    ) -> list[KeyRow]:
        """Give the keys ``select`` reads ``status`` and ``message``; returns those that
        changed."""
        event_type = (
            EventType.EventTypeBlockKey
            if status is KeyStatus.BLOCKED
            else EventType.EventTypeUnblockKey
        )
        changed: list[KeyRow] = []
        async with transaction(self._sessions) as session:
            for row in await select(session):
                if (row.status, row.status_message) == (status, message):
                    continue
                updated = row.with_status(status, message)
                await records.save_status(session, updated)
                event = key_event(event_type, updated, caller_id=caller_id)
                await self._publisher.publish(TOPIC, event, session=session)
                changed.append(updated)
        await self._mirror.refresh(row.record for row in changed)
        if changed:
            _log.info(
                "v1.keys_status_changed",
                key_ids=[row.id for row in changed],
                status=status.value,
                caller=caller_id,
            )
        return changed
