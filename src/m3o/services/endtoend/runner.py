"""Starting runs, one at a time across processes, and recording what they found.

A run first takes the lease ``endtoend:run`` in the counter store (``set_if_absent``, its
value the run id), for longer than a run may take (:attr:`EndtoendSettings.lease_ttl`); the
run is cut short at :attr:`EndtoendSettings.run_timeout`, so it never outlives its lease.
Whatever happens, the run ends by storing its result and, when something failed, by
reporting an alert (action ``signup`` or ``examples``, the error in the metadata); a crash
of the run itself is stored and reported as a setup failure, never swallowed. The lease is
then given back. A run cancelled by a shut-down stores nothing and gives the lease back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.endtoend import records
from m3o.services.endtoend.alerts import Alert, AlertReporter
from m3o.services.endtoend.run import Outcome
from m3o.services.endtoend.settings import EndtoendSettings

__all__ = ["LEASE_KEY", "RunFactory", "Runnable", "Runner"]

_log = get_logger(__name__)

LEASE_KEY = "endtoend:run"


class Runnable(Protocol):
    """What a run is to the runner: something that finds an :class:`Outcome`."""

    async def run(self) -> Outcome: ...


RunFactory = Callable[[str], Runnable]
"""Makes the run with the given id."""


class Runner:
    def __init__(
        self,
        *,
        settings: EndtoendSettings,
        sessions: SessionFactory,
        counters: CounterStore,
        alerts: AlertReporter,
        make_run: RunFactory,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._counters = counters
        self._alerts = alerts
        self._make_run = make_run
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[bool, str]:
        """Start a run in the background unless one is running: (started, its run id, or
        the running one's)."""
        run_id = str(uuid.uuid4())
        if not await self._take_lease(run_id):
            return False, await self._counters.get_value(LEASE_KEY) or ""
        task = asyncio.create_task(self._run(run_id), name=f"endtoend:{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True, run_id

    async def run_scheduled(self) -> None:
        """The cron's run: now, unless one is running (then this slot is skipped)."""
        run_id = str(uuid.uuid4())
        if not await self._take_lease(run_id):
            _log.info("endtoend.skipped", reason="a run is going on")
            return
        await self._run(run_id)

    async def running(self) -> bool:
        return await self._counters.get_value(LEASE_KEY) is not None

    async def wait(self) -> None:
        """Wait for the runs this process started (tests, shut-down)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the runs of this process (they store nothing and give the lease back)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _take_lease(self, run_id: str) -> bool:
        return await self._counters.set_if_absent(LEASE_KEY, run_id, ttl=self._settings.lease_ttl)

    async def _give_back(self, run_id: str) -> None:
        # Only our own lease: one that expired may have been taken by another run since.
        if await self._counters.get_value(LEASE_KEY) == run_id:
            await self._counters.delete(LEASE_KEY)

    async def _run(self, run_id: str) -> None:
        started = self._clock()
        _log.info("endtoend.started", run_id=run_id)
        try:
            outcome = await self._outcome(run_id)
            await self._record(run_id, started, outcome)
        finally:
            await asyncio.shield(self._give_back(run_id))

    async def _outcome(self, run_id: str) -> Outcome:
        limit = self._settings.run_timeout
        try:
            async with asyncio.timeout(limit.total_seconds()):
                return await self._make_run(run_id).run()
        except TimeoutError:
            return Outcome(setup_error=f"The check did not finish within {limit}")
        except Exception:  # noqa: BLE001 - a crashed run is a failed check, stored and reported
            _log.exception("endtoend.crashed", run_id=run_id)
            return Outcome(setup_error="The check failed unexpectedly (see the logs)")

    async def _record(self, run_id: str, started: datetime, outcome: Outcome) -> None:
        finished = self._clock()
        stored = records.StoredResult(
            run_id=run_id,
            started=started,
            finished=finished,
            passed=outcome.passed,
            error=outcome.error,
        )
        async with transaction(self._sessions) as session:
            await records.add_result(session, stored)
        _log.info(
            "endtoend.finished",
            run_id=run_id,
            outcome="passed" if outcome.passed else "failed",
            seconds=round((finished - stored.started).total_seconds(), 3),
            error=outcome.error,
        )
        action = outcome.alert_action
        if action is not None:
            await self._alerts.report(Alert(action=action, metadata={"error": outcome.error}))
