"""A customer's default project: made the first time a customer with no project lists.

The default project is ``{id: <customer id>, name: "default", members [{<customer id>,
["admin"]}], billing_account: <customer id>}``. It is made once: the customer's account
row is locked, then checked (made before? customer deleted? a project already?), and the
project, the account's ``default_made`` flag and ProjectCreated are written in that one
transaction. Two concurrent first Lists therefore make one project and one event: the
second waits for the lock, then finds the first's project.
"""

from __future__ import annotations

from dataclasses import replace

from m3o.events.projects import TOPIC
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.projects import records
from m3o.services.projects.records import MemberRecord, ProjectRecord

__all__ = ["DEFAULT_NAME", "DefaultProjects"]

_log = get_logger(__name__)

DEFAULT_NAME = "default"


class DefaultProjects:
    def __init__(
        self, *, sessions: SessionFactory, publisher: Publisher, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock

    async def projects_of(self, customer_id: str) -> list[ProjectRecord]:
        """The customer's projects, its default project made first if it has none."""
        async with self._sessions() as session:
            found = await records.of_member(session, customer_id)
        if found:
            return found
        async with transaction(self._sessions) as session:
            account = await records.lock_account(session, customer_id)
            found = await records.of_member(session, customer_id)
            if found or account.default_made or account.deleted is not None:
                return found
            project = ProjectRecord(
                id=customer_id,
                name=DEFAULT_NAME,
                billing_account=customer_id,
                created=self._clock(),
                members=(MemberRecord(customer_id),),
            )
            await records.insert_project(session, project)
            await records.save_account(session, replace(account, default_made=True))
            await self._publisher.publish(TOPIC, project.created_event(), session=session)
        _log.info("projects.default_created", customer_id=customer_id)
        return [project]
