"""The cron scheduler: a cron whose dependency is away is a warning and runs again next
time; any other failure is an error with its traceback."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from structlog.testing import capture_logs

from m3o.runtime.errors import Unavailable
from m3o.runtime.service import Cron
from m3o.runtime.service.scheduler import Scheduler


async def _ran(failure: Exception) -> list[dict[str, object]]:
    runs = asyncio.Event()

    async def run() -> None:
        runs.set()
        raise failure

    scheduler = Scheduler()
    scheduler.add("balance", Cron("flush", timedelta(hours=1), run, at_start=True))
    with capture_logs() as logs:
        await scheduler.start()
        await asyncio.wait_for(runs.wait(), timeout=30)
        await scheduler.stop()
    return [line for line in logs if str(line["event"]).startswith("cron.")]


async def test_a_cron_whose_dependency_is_away_is_a_warning() -> None:
    [line] = await _ran(Unavailable("counters", "Counter store unavailable"))
    assert line["event"] == "cron.unavailable"
    assert line["log_level"] == "warning"
    assert line["cron"] == "balance:flush"
    assert line["detail"] == "Counter store unavailable"


async def test_any_other_failure_is_an_error() -> None:
    [line] = await _ran(RuntimeError("broken"))
    assert line["event"] == "cron.failed"
    assert line["log_level"] == "error"
