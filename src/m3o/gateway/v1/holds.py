"""The gateway's holds: every admitted call is written down with its reservation, so that
what is charged is exactly what was served with a 2xx, whatever fails and whenever the
process dies.

- admission records the call's hold in the book ``v1:holds`` in the same atomic step as
  its reservation (:class:`~m3o.runtime.counters.admission.Hold`);
- once a 2xx has been answered, :meth:`Holds.commit_soon` marks it served with the call's
  requests/Request event (its id fixed), in one atomic step, off the response path: a
  commit that fails, or finds the hold released, releases the reservation (the call was
  answered free);
- once the event is published, the hold is settled (removed), the charge stays. Given
  :class:`~m3o.gateway.v1.ports.ServedHolds` (the platform profile, whose holds and event
  streams share one Redis), the commit itself publishes the event and removes the hold, in
  the same atomic step (:attr:`Holds.publishes`): there is no note, no separate publish
  and no settle;
- every other outcome releases the hold, which undoes the reservation only while the hold
  is there (idempotent). A release the counter store cannot take now (or an admission
  whose reply was lost, which may or may not have reserved) is retried in the background
  until the store answers;
- each process renews a lease ``v1:holds-lease:<instance>`` three times a sweep; holds of
  an instance whose lease expired (it crashed) are recovered by any gateway, at start and
  every ``sweep_every``: served ones have their event published (same id, so counted
  once) and are settled, the others are released. An instance is taken for dead only
  when its lease is missing at two sweeps in a row (the start's counts as one): a Redis
  restarted empty loses every lease at once, the live gateways write theirs again within
  a third of a sweep, and their calls admitted in between are in the new book, where a
  peer sweeping at that moment would otherwise release them (answered, then free);
- the same sweep finishes this process's own holds that no call of it is waiting on any
  more, found so in two sweeps running: an admission whose reply was lost and that ran in
  the store only after its background release found nothing (released now), and a served
  call whose event is still unpublished a sweep later (published again, same id).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import orjson

from m3o.gateway.v1.ports import ServedHolds
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Held, Hold, Verdict
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Envelope
from m3o.runtime.logging import get_logger

__all__ = ["BOOK", "LEASE_PREFIX", "Holds", "envelope_from_note", "note_of"]

_log = get_logger(__name__)

BOOK = "v1:holds"
"""The book of every gateway's holds (ids are ``<instance>.<n>``)."""
LEASE_PREFIX = "v1:holds-lease:"
DEFAULT_LEASE = timedelta(seconds=30)
DEFAULT_SWEEP_EVERY = timedelta(seconds=10)
_RETRY_MAX = 5.0
_RENEWS_PER_SWEEP = 3
_COMMIT_BATCH = 256
"""Commits sent in one ``commit_many`` at most."""

Republish = Callable[[Sequence[Envelope]], Awaitable[None]]
"""Publishes recovered events with their ids (raises if they could not be)."""


def note_of(envelope: Envelope) -> str:
    """A served hold's note: its event, so a crash before publishing loses nothing.
    Written for every served call, hence orjson (2 µs, ``json.dumps`` 5)."""
    return orjson.dumps(
        {
            "id": envelope.id,
            "topic": envelope.topic,
            "type": envelope.type_name,
            "time": envelope.time.isoformat(),
            "payload": base64.b64encode(envelope.payload).decode(),
            "traceparent": envelope.traceparent,
        }
    ).decode()


def envelope_from_note(note: str) -> Envelope:
    data = orjson.loads(note)
    return Envelope(
        id=str(data["id"]),
        topic=str(data["topic"]),
        type_name=str(data["type"]),
        time=datetime.fromisoformat(str(data["time"])).astimezone(UTC),
        payload=base64.b64decode(str(data["payload"])),
        traceparent=str(data.get("traceparent", "")),
    )


class Holds:
    def __init__(
        self,
        counters: CounterStore,
        *,
        instance: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        sweep_every: timedelta = DEFAULT_SWEEP_EVERY,
        served: ServedHolds | None = None,
    ) -> None:
        self._counters = counters
        self._served = served
        self.instance = instance or uuid.uuid4().hex
        self._lease = lease
        self._sweep_every = sweep_every.total_seconds()
        self._numbers = itertools.count(1)
        self._live: set[str] = set()
        """This process's holds whose call is not finished (an id never comes back)."""
        self._orphans: set[str] = set()
        """Own holds the last sweep found in the book that no call is waiting on."""
        self._leaseless: set[str] = set()
        """Other instances with holds whose lease the last sweep found missing."""
        self._pending: dict[str, tuple[AdmissionRequest, AdmissionDecision]] = {}
        self._commits: list[tuple[Hold, Envelope, asyncio.Future[bool]]] = []
        self._committing: set[asyncio.Task[None]] = set()
        self._retrying: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._republish: Republish | None = None

    @property
    def publishes(self) -> bool:
        """Whether a commit publishes the call's event itself (and removes its hold):
        then a committed call's event is not the request log's to publish."""
        return self._served is not None

    @property
    def unreleased(self) -> int:
        """Releases waiting for the counter store."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Holds of calls this process has not finished (admitting, forwarding, releasing)."""
        return len(self._live)

    def new(self) -> Hold:
        hold = Hold(BOOK, f"{self.instance}.{next(self._numbers)}")
        self._live.add(hold.id)
        return hold

    def refused(self, hold: Hold) -> None:
        """The call's admission answered a refusal: nothing was reserved, nothing written."""
        self._live.discard(hold.id)

    def commit_soon(self, hold: Hold, envelope: Envelope) -> asyncio.Future[bool]:
        """Mark the call served with its event, in the background: the future says whether
        its hold was still there (False: released), or raises the store's failure. Once
        committed, the call's event is the request log's to publish (and the hold its to
        settle).

        The commits of one loop turn go together, in one ``commit_many`` (one round trip
        however many calls finish at once); a failure of it fails each of them. With
        :attr:`publishes`, they go together to :meth:`ServedHolds.settle_served` instead,
        which publishes each event as it removes its hold.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._commits.append((hold, envelope, future))
        if len(self._commits) == 1:
            loop.call_soon(self._send_commits)
        return future

    def _send_commits(self) -> None:
        batch, self._commits = self._commits, []
        for start in range(0, len(batch), _COMMIT_BATCH):
            task = asyncio.get_running_loop().create_task(
                self._commit_batch(batch[start : start + _COMMIT_BATCH])
            )
            self._committing.add(task)
            task.add_done_callback(self._committing.discard)

    async def _commit_batch(self, batch: list[tuple[Hold, Envelope, asyncio.Future[bool]]]) -> None:
        try:
            if self._served is not None:
                found = await self._served.settle_served([(hold, env) for hold, env, _ in batch])
            else:
                found = await self._counters.commit_many(
                    [(hold, note_of(envelope)) for hold, envelope, _ in batch]
                )
        except Exception as exc:  # noqa: BLE001 - each waiter gets the failure, whatever it is
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, _, future in batch:
                future.cancel()
            raise
        for (hold, _, future), one in zip(batch, found, strict=True):
            if one:
                self._live.discard(hold.id)
            if not future.done():
                future.set_result(one)

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        """Give back the reservation now, or in the background once the store answers."""
        try:
            await self._counters.release(request, decision)
        except M3OError as exc:
            self._later(request, decision, exc)
            return
        if request.hold is not None:
            self._live.discard(request.hold.id)

    def release_unknown(self, request: AdmissionRequest) -> None:
        """An admission that failed: it may have reserved (its reply was lost); the hold
        says what, if anything, to give back."""
        if request.hold is not None:
            self._later(request, AdmissionDecision(Verdict.ADMITTED), None)

    def _later(
        self, request: AdmissionRequest, decision: AdmissionDecision, exc: M3OError | None
    ) -> None:
        if request.hold is None:
            _log.error("v1.release_failed", charge=decision.charge, error=exc.detail if exc else "")
            return
        self._pending[request.hold.id] = (request, decision)
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        delay = 0.05
        while self._pending:
            await self.retry_releases()
            if self._pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def retry_releases(self) -> bool:
        """Try every waiting release once; True when none is left."""
        for hold_id, (request, decision) in list(self._pending.items()):
            try:
                await self._counters.release(request, decision)
            except M3OError as exc:
                _log.warning("v1.release_waiting", pending=len(self._pending), error=exc.detail)
                return False
            self._pending.pop(hold_id, None)
            self._live.discard(hold_id)
        return True

    async def start(self, republish: Republish) -> None:
        """Take the lease, recover what crashed gateways left, keep both up."""
        self._republish = republish
        with contextlib.suppress(M3OError):
            await self._renew()
            await self.recover()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="v1-holds")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        if not await self.retry_releases():
            # Left to the next gateway's recovery once this lease expires.
            _log.warning("v1.releases_left", count=len(self._pending))

    async def _renew(self) -> None:
        await self._counters.set_value(LEASE_PREFIX + self.instance, "1", ttl=self._lease)

    async def _run(self) -> None:
        for tick in itertools.count(1):
            await asyncio.sleep(self._sweep_every / _RENEWS_PER_SWEEP)
            try:
                await self._renew()
                if tick % _RENEWS_PER_SWEEP == 0:
                    await self.recover()
            except M3OError as exc:
                _log.warning("v1.holds_sweep_failed", error=exc.detail)

    async def recover(self) -> int:
        """Finish the holds of gateways whose lease expired, and this process's own holds
        that no call has waited on for a whole sweep; how many were finished."""
        held = await self._counters.holds(BOOK)
        instances = {_instance(h.hold) for h in held} - {self.instance}
        missing = set()
        for instance in instances:
            if await self._counters.get_value(LEASE_PREFIX + instance) is None:
                missing.add(instance)
        # Each gets a sweep to write its lease again (see the module).
        dead = missing & self._leaseless
        self._leaseless = missing - dead
        # A hold not live is finished as far as this process's calls go (its id never comes
        # back), so finishing it from a copy of the book a moment old is safe: a release
        # undoes only a hold still there, and an event id is counted once.
        orphans = {
            h.hold.id
            for h in held
            if _instance(h.hold) == self.instance and h.hold.id not in self._live
        }
        stale, self._orphans = orphans & self._orphans, orphans - self._orphans
        finished = await self._finish_each(
            h for h in held if _instance(h.hold) in dead or h.hold.id in stale
        )
        if finished:
            _log.warning("v1.holds_recovered", count=finished, instances=len(dead), own=len(stale))
        return finished

    async def finish_all(self, republish: Republish) -> int:
        """Finish every hold in the book, whichever gateway wrote it; how many.

        For the one process that holds the database alone (``m3o serve`` on SQLite, which
        keeps no holds) as it starts: holds an earlier version left when it was killed
        are released, or their events published again (same ids) and settled.
        """
        self._republish = republish
        finished = await self._finish_each(await self._counters.holds(BOOK))
        if finished:
            _log.warning("v1.holds_recovered", count=finished, instances=0, own=0)
        return finished

    async def _finish_each(self, found: Iterable[Held]) -> int:
        """Finish each hold in turn until the counter store fails; how many."""
        finished = 0
        for one in found:
            if not await self._finish(one):
                break
            finished += 1
        return finished

    async def _finish(self, found: Held) -> bool:
        """Release an unanswered hold, or publish a served one's event and settle it;
        False when the counter store failed (the rest waits for the next sweep)."""
        try:
            if found.note is None:
                await self._counters.release(found.request, found.decision)
                return True
            if self._republish is None:
                return True
            try:
                await self._republish([envelope_from_note(found.note)])
            except Exception as exc:  # noqa: BLE001 - whatever failed, the next sweep retries
                _log.warning("v1.holds_republish_failed", error=type(exc).__name__)
                return True
            await self._counters.settle_many([found.hold])
        except M3OError as exc:
            _log.warning("v1.holds_recovery_failed", error=exc.detail)
            return False
        return True


def _instance(hold: Hold) -> str:
    return hold.id.rpartition(".")[0]
