"""What happens to keys when their customer or project changes.

- customers/Deleted: every key the customer pays for is deleted (DeleteKey each);
- customers/Banned: their active keys are blocked with ``User has been banned``;
- customers/Unbanned: the keys blocked by the ban are unblocked; a key blocked for another
  reason (an admin's BlockKey before the ban) stays blocked;
- projects/ProjectDeleted: the project's keys are deleted.

Each handler is idempotent (a key already gone or already in the wanted state is left
alone, without an event), so redelivery is harmless; a failure raises and the bus retries
with backoff. requests/Request (``last_seen``) is in ``last_seen.py``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events import customers, projects
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.runtime.store import SessionFactory
from m3o.services.v1 import records
from m3o.services.v1.keys.changes import KeyChanges
from m3o.services.v1.records import KeyRow
from m3o.services.v1.settings import BAN_MESSAGE
from m3o.services.v1.view import KeyStatus

__all__ = ["MAX_ATTEMPTS", "CustomerEvents", "ProjectEvents"]

_log = get_logger(__name__)

MAX_ATTEMPTS = 16
"""Deliveries of one event before it is dead-lettered (about 45 minutes with the bus's
backoff), so a short outage of auth or the counter store loses nothing."""


class CustomerEvents:
    """Consumes ``customers`` in the group ``v1-customers``."""

    def __init__(self, *, sessions: SessionFactory, changes: KeyChanges) -> None:
        self._sessions = sessions
        self._changes = changes

    def consumer(self) -> Consumer:
        return Consumer(customers.TOPIC, self.handle, max_attempts=MAX_ATTEMPTS)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(customers.Event)
        customer_id = event.customer.id
        if not customer_id:
            return
        kind = customers.EventType
        if event.type == kind.EventTypeDeleted:
            async with self._sessions() as session:
                found = await records.of_billing_account(session, customer_id)
            await self._changes.delete(found, caller_id=event.caller_id)
        elif event.type == kind.EventTypeBanned:

            async def active(session: AsyncSession) -> list[KeyRow]:
                return await records.of_billing_account(
                    session, customer_id, status=KeyStatus.ACTIVE, lock=True
                )

            await self._changes.set_status(
                active, KeyStatus.BLOCKED, BAN_MESSAGE, caller_id=event.caller_id
            )
        elif event.type == kind.EventTypeUnbanned:

            async def banned(session: AsyncSession) -> list[KeyRow]:
                return await records.of_billing_account(
                    session,
                    customer_id,
                    status=KeyStatus.BLOCKED,
                    status_message=BAN_MESSAGE,
                    lock=True,
                )

            await self._changes.set_status(banned, KeyStatus.ACTIVE, "", caller_id=event.caller_id)


class ProjectEvents:
    """Consumes ``projects`` in the group ``v1-projects``."""

    def __init__(self, *, sessions: SessionFactory, changes: KeyChanges) -> None:
        self._sessions = sessions
        self._changes = changes

    def consumer(self) -> Consumer:
        return Consumer(projects.TOPIC, self.handle, max_attempts=MAX_ATTEMPTS)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(projects.Event)
        if event.type != projects.EventType.EventTypeProjectDeleted:
            return
        project_id = event.project_deleted.id
        if not project_id:
            _log.warning("v1.project_event_skipped", event_id=delivery.id, reason="no id")
            return
        async with self._sessions() as session:
            found = await records.of_project(session, project_id)
        await self._changes.delete(found, caller_id="")
