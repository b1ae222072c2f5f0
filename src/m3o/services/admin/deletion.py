"""Deleting one customer's data in every service, remembering who has done it.

A run: record the deletion (and the address, when the caller knows it); ask the services
that have not yet succeeded for this customer, ``customers`` first when it is among them
(its answer is the address), then all the others at once; record each success as it
comes. Services already done are never asked again, so a retry, whether the caller's, the
bus's or the resume cron's, only repeats what failed. When every service has succeeded the
deletion is complete, and later runs for that customer ask nobody.

One run at a time per customer: a run holds the deletion (``claimed_until``, a lease, so a
run whose process died is taken over); a second run meanwhile asks nobody and says so
(``busy``): DeleteData answers Conflict, the consumer fails the event so the bus retries.

A service that keeps rows by address (signup, emails) is not asked while the address is
unknown and ``customers``, which knows it, has not answered: it would succeed without
finding those rows. It counts as failed for that run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.email_address import normalise_email
from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.admin import records
from m3o.services.admin.targets import Target

__all__ = ["DEFAULT_LEASE", "Deletions", "Outcome"]

_log = get_logger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
"""How long a run holds a customer's deletion at most: a run whose process died is taken
over after it. Each call to a service has its own, shorter, deadline."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The services done with the customer (ever) and those that failed in this run."""

    deleted: tuple[str, ...]
    failed: tuple[str, ...]
    busy: bool = False
    """Another run holds this customer's deletion: nothing was asked."""


class Deletions:
    """Runs customers' deletions over ``targets``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        targets: Sequence[Target],
        clock: Clock = utc_now,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._sessions = sessions
        self._targets = tuple(targets)
        self._clock = clock
        self._lease = lease

    async def run(self, customer_id: str, email: str = "") -> Outcome:
        now = self._clock()
        async with transaction(self._sessions) as session:
            await records.start(session, customer_id, normalise_email(email), now)
            held = await records.claim(session, customer_id, now, now + self._lease)
            found = await records.find(session, customer_id)
        assert found is not None  # recorded just above
        if found.completed is not None or not held:
            return Outcome(
                deleted=tuple(sorted(found.done)), failed=(), busy=found.completed is None
            )
        try:
            return await self._run(found)
        finally:
            async with transaction(self._sessions) as session:
                await records.release(session, customer_id)

    async def _run(self, found: records.Deletion) -> Outcome:
        customer_id = found.customer_id
        done = set(found.done)
        address = found.email
        pending = [t for t in self._targets if t.name not in done]
        failed: list[str] = []
        first = [t for t in pending if t.tells_email]
        answers = await self._ask(customer_id, address, first)
        for target, learned in zip(first, answers, strict=True):
            if learned is None:
                failed.append(target.name)
            else:
                done.add(target.name)
                address = address or normalise_email(learned)
        waiting = any(t.tells_email and t.name not in done for t in self._targets)
        rest: list[Target] = []
        for target in pending:
            if target.tells_email:
                continue
            if target.needs_email and not address and waiting:
                failed.append(target.name)
                _log.warning("admin.delete_waiting", customer_id=customer_id, service=target.name)
            else:
                rest.append(target)
        answers = await self._ask(customer_id, address, rest)
        for target, learned in zip(rest, answers, strict=True):
            if learned is None:
                failed.append(target.name)
            else:
                done.add(target.name)
        if not failed:
            async with transaction(self._sessions) as session:
                await records.complete(session, customer_id, self._clock())
        return Outcome(deleted=tuple(sorted(done)), failed=tuple(sorted(failed)))

    async def resume(self, limit: int = 100) -> None:
        """Run again every deletion some service has not finished (the resume cron)."""
        async with self._sessions() as session:
            customer_ids = await records.incomplete(session, limit)
        for customer_id in customer_ids:
            outcome = await self.run(customer_id)
            if outcome.failed:  # (a run under way elsewhere is left to finish)
                _log.warning(
                    "admin.delete_incomplete", customer_id=customer_id, failed=list(outcome.failed)
                )

    async def _ask(
        self, customer_id: str, email: str, targets: Sequence[Target]
    ) -> list[str | None]:
        """Ask each of ``targets`` at once; each one's learned address, None if it failed."""
        return list(await asyncio.gather(*(self._ask_one(customer_id, email, t) for t in targets)))

    async def _ask_one(self, customer_id: str, email: str, target: Target) -> str | None:
        try:
            learned = await target.delete(customer_id, email)
        except M3OError as exc:
            _log.error(
                "admin.delete_failed",
                customer_id=customer_id,
                service=target.name,
                kind=type(exc).__name__,
                error_id=exc.id,
                detail=exc.detail,
            )
            return None
        async with transaction(self._sessions) as session:
            await records.mark_deleted(
                session, customer_id, target.name, normalise_email(learned), self._clock()
            )
        return learned
