"""Deleting a customer's projects: on customers/Deleted and on DeleteCustomer.

In one transaction, under the customer's account lock: the projects the customer pays for
are removed (members too), each publishing ProjectDeleted; the customer's memberships of
other projects are removed; the account is marked deleted, so no default project or new
project is made for it afterwards. Running it again finds nothing left and publishes
nothing, so redeliveries and repeated calls are harmless.
"""

from __future__ import annotations

from dataclasses import replace

from m3o.events.projects import TOPIC
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.projects import records

__all__ = ["Erasure"]

_log = get_logger(__name__)


class Erasure:
    def __init__(
        self, *, sessions: SessionFactory, publisher: Publisher, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock

    async def erase(self, customer_id: str) -> int:
        """Delete ``customer_id``'s projects and memberships; returns how many projects."""
        async with transaction(self._sessions) as session:
            account = await records.lock_account(session, customer_id)
            gone = await records.billed_to(session, customer_id)
            await records.remove_projects(session, [project.id for project in gone])
            await records.remove_memberships(session, customer_id)
            if account.deleted is None:
                await records.save_account(session, replace(account, deleted=self._clock()))
            for project in gone:
                await self._publisher.publish(TOPIC, project.deleted_event(), session=session)
        _log.info("projects.customer_erased", customer_id=customer_id, projects=len(gone))
        return len(gone)
