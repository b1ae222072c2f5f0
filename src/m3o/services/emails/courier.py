"""Delivery: taking stored emails to the transport, with retries, at least once.

An email is committed before any attempt to send it. Send starts the first attempt in the
background (:meth:`Courier.dispatch`); scheduled emails and retries are attempted by
:meth:`Courier.deliver_due`, which the service runs on a schedule. An attempt:

1. claims the row in a short transaction: it must be pending, due, and not held by another
   attempt; the claim holds it for ``lease`` and counts the attempt;
2. sends it outside any transaction (in the ``local`` profile the database is one SQLite
   file whose writers queue behind each other; a slow mail server must not hold them);
3. records the outcome: sent; or, after a transient failure, due again after an
   exponential backoff; or failed, after a permanent failure or the last attempt.

A process that dies between 1 and 3 leaves the row held until the lease passes; the next
:meth:`Courier.deliver_due` (run on a schedule, in any process) takes it up again and sends
it once more. So an email is never lost, and in that rare case it may arrive twice (with
the same ``Message-ID``). An attempt that never finished counts: after ``max_attempts``
started attempts the email is marked failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from m3o.runtime.clock import Clock
from m3o.runtime.email_address import mask_email
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.emails import records
from m3o.services.emails.addresses import Address, parse_address
from m3o.services.emails.records import EmailRecord
from m3o.services.emails.transport import DeliveryError, MailTransport, OutgoingEmail

__all__ = ["SHUTDOWN_GRACE", "Courier", "RetryPolicy"]

_log = get_logger(__name__)

SHUTDOWN_GRACE = 5.0
"""Seconds a stopping process lets background attempts finish before cancelling them."""
_MAX_ROUNDS = 20
"""Batches one :meth:`Courier.deliver_due` run takes at most (the next run does the rest)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how late a failing email is tried again.

    Attempt ``n`` that fails transiently is retried ``backoff * 2**(n-1)`` later (at most
    ``backoff_max``); after ``max_attempts`` attempts the email is failed. The defaults
    (10 s, 20 s, 40 s, 80 s, 160 s) span the five minutes a verification code lives.
    ``lease`` is how long an attempt holds its email: longer than a send may take.
    """

    max_attempts: int = 6
    backoff: timedelta = timedelta(seconds=10)
    backoff_max: timedelta = timedelta(minutes=10)
    lease: timedelta = timedelta(minutes=1)

    def delay(self, attempt: int) -> timedelta:
        delay: timedelta = self.backoff * 2 ** max(attempt - 1, 0)
        return min(delay, self.backoff_max)


class Courier:
    """Delivers stored emails through one transport."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        transport: MailTransport,
        clock: Clock,
        policy: RetryPolicy | None = None,
        batch_size: int = 100,
        concurrency: int = 8,
    ) -> None:
        self._sessions = sessions
        self._transport = transport
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._in_flight: set[asyncio.Task[bool]] = set()

    @property
    def transport(self) -> MailTransport:
        return self._transport

    async def deliver(self, email_id: str) -> bool:
        """Make one attempt at email ``email_id`` if it is due and free; True if it did."""
        now = self._clock()
        async with transaction(self._sessions) as session:
            record = await records.claim(session, email_id, now, now + self._policy.lease)
        if record is None:
            return False
        if record.attempts > self._policy.max_attempts:
            await self._give_up(
                record,
                f"Gave up after {self._policy.max_attempts} attempts; the last did not finish",
            )
            return True
        try:
            await self._transport.send(_outgoing(record))
        except DeliveryError as exc:
            await self._failed(record, exc)
            return True
        async with transaction(self._sessions) as session:
            await records.mark_sent(session, record.id, self._clock(), self._transport.name)
        _log.info(
            "emails.sent",
            email_id=record.id,
            to=mask_email(record.recipient),
            transport=self._transport.name,
            attempt=record.attempts,
        )
        return True

    def dispatch(self, email_id: str) -> None:
        """Start an attempt at ``email_id`` in the background (Send does not wait for the
        mail server); :meth:`drain` waits for such attempts."""
        task = asyncio.create_task(self.deliver(email_id), name=f"emails-deliver-{email_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[bool]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The email stays pending; the next scheduled run retries it after its lease.
            _log.error("emails.attempt_crashed", task=task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the background attempts; cancel those still running after ``timeout``
        seconds (their emails are tried again once their lease has passed)."""
        if not self._in_flight:
            return
        _, running = await asyncio.wait(set(self._in_flight), timeout=timeout)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def deliver_due(self) -> int:
        """Attempt every email that is due and free (scheduled, retried, or abandoned by a
        crashed attempt); returns how many attempts were made."""
        limit = asyncio.Semaphore(self._concurrency)

        async def one(email_id: str) -> bool:
            async with limit:
                return await self.deliver(email_id)

        attempted = 0
        for _ in range(_MAX_ROUNDS):
            async with self._sessions() as session:
                ids = await records.due_ids(session, self._clock(), self._batch_size)
            if not ids:
                break
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(email_id)) for email_id in ids]
            attempted += sum(1 for task in tasks if task.result())
            if len(ids) < self._batch_size:
                break
        return attempted

    async def _failed(self, record: EmailRecord, error: DeliveryError) -> None:
        # Servers often quote the address in their refusals: keep it out of logs.
        reason = str(error).replace(record.recipient, mask_email(record.recipient))
        if error.permanent or record.attempts >= self._policy.max_attempts:
            await self._give_up(record, reason)
            return
        due = self._clock() + self._policy.delay(record.attempts)
        async with transaction(self._sessions) as session:
            await records.mark_retry(session, record.id, due, reason)
        _log.warning(
            "emails.retry",
            email_id=record.id,
            to=mask_email(record.recipient),
            attempt=record.attempts,
            due=due.isoformat(),
            error=reason,
        )

    async def _give_up(self, record: EmailRecord, reason: str) -> None:
        async with transaction(self._sessions) as session:
            await records.mark_failed(session, record.id, reason)
        _log.error(
            "emails.failed",
            email_id=record.id,
            to=mask_email(record.recipient),
            attempts=record.attempts,
            error=reason,
        )


def _outgoing(record: EmailRecord) -> OutgoingEmail:
    sender = parse_address(record.sender)
    if sender is None:
        raise DeliveryError(f"Invalid sender {record.sender!r}", permanent=True)
    return OutgoingEmail(
        id=record.id,
        sender=sender,
        to=Address(record.recipient),
        subject=record.subject,
        text=record.text,
        html=record.html,
        provider_template=record.provider_template,
        template_data=record.template_data,
    )
