"""Running services' crons: each on its interval, never two runs of one cron at a time.

With several processes (the ``platform`` profile) a cron should run once per interval,
not once per replica: a run first claims ``cron:<name>:<slot>`` in the counter store and
skips the slot when another process already has it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Cron

__all__ = ["Scheduler"]

_log = get_logger(__name__)


class Scheduler:
    def __init__(self, counters: CounterStore | None = None) -> None:
        self._counters = counters
        self._crons: list[tuple[str, Cron]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, service: str, cron: Cron) -> None:
        self._crons.append((service, cron))

    async def start(self) -> None:
        for service, cron in self._crons:
            self._tasks.append(
                asyncio.create_task(self._loop(service, cron), name=f"cron:{service}:{cron.name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _claim(self, key: str, every: timedelta) -> bool:
        if self._counters is None:
            return True
        slot = int(time.time() // max(every.total_seconds(), 1))
        return await self._counters.set_if_absent(f"cron:{key}:{slot}", "1", ttl=every)

    async def _run_once(self, service: str, cron: Cron) -> None:
        key = f"{service}:{cron.name}"
        try:
            if await self._claim(key, cron.every):
                await cron.run()
        except asyncio.CancelledError:
            raise
        except Unavailable as exc:
            # What it needs is away for now (Redis restarting, a service starting): it runs
            # again next time, and the outage is reported by health and readiness.
            _log.warning("cron.unavailable", cron=key, detail=exc.detail)
        except Exception:  # noqa: BLE001 - a failing cron is logged and runs again next time
            _log.exception("cron.failed", cron=key)

    async def _loop(self, service: str, cron: Cron) -> None:
        if cron.at_start:
            await self._run_once(service, cron)
        while True:
            await asyncio.sleep(cron.every.total_seconds())
            await self._run_once(service, cron)
