"""Status.Call: every check runs, concurrently, each within the timeout; every part is
reported OK or NOT_HEALTHY, and why a part failed goes only to the log."""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from m3o.runtime.auth import CallContext
from m3o.services.status.checks import Check
from m3o.services.status.handler import NOT_HEALTHY, OK, Status
from m3o.services.status.proto import status_pb2 as pb
from services.status.support import LEAK

CTX = CallContext(service="status", method="Call", account=None)


async def _fine() -> None:
    return None


async def _broken() -> None:
    raise ConnectionError(LEAK)


async def _hangs() -> None:
    await asyncio.Event().wait()


async def test_all_healthy_is_healthy_with_every_part_ok() -> None:
    status = Status(
        checks=[Check("auth", _fine), Check("database", _fine), Check("events", _fine)],
        timeout=2,
    )

    answer = await status.call(pb.CallRequest(), CTX)

    assert answer.healthy
    assert dict(answer.statuses) == {"auth": OK, "database": OK, "events": OK}


async def test_one_failing_part_is_not_healthy_and_the_cause_is_only_logged() -> None:
    status = Status(
        checks=[Check("auth", _fine), Check("customers", _broken), Check("database", _fine)],
        timeout=2,
    )

    with capture_logs() as logs:
        answer = await status.call(pb.CallRequest(), CTX)

    assert not answer.healthy
    assert dict(answer.statuses) == {"auth": OK, "customers": NOT_HEALTHY, "database": OK}
    assert LEAK not in str(answer)
    [logged] = [entry for entry in logs if entry["event"] == "status.not_healthy"]
    assert logged["part"] == "customers"
    assert LEAK in logged["error"]
    assert logged["log_level"] == "warning"


async def test_a_check_that_hangs_past_the_timeout_is_not_healthy_and_others_still_answer() -> None:
    status = Status(
        checks=[Check("auth", _fine), Check("stuck", _hangs), Check("events", _fine)],
        timeout=0.2,
    )

    started = time.monotonic()
    with capture_logs() as logs:
        answer = await asyncio.wait_for(status.call(pb.CallRequest(), CTX), timeout=30)
    elapsed = time.monotonic() - started

    assert not answer.healthy
    assert dict(answer.statuses) == {"auth": OK, "stuck": NOT_HEALTHY, "events": OK}
    assert elapsed < 10  # bounded by the check's timeout, not by the hanging check
    assert [(e["part"], e["timeout"]) for e in logs if e["event"] == "status.timeout"] == [
        ("stuck", 0.2)
    ]


async def test_checks_run_concurrently() -> None:
    # Each of the two checks answers only once the other has started: run one after the
    # other, both would time out.
    started = {name: asyncio.Event() for name in ("a", "b")}

    def waiting_for(me: str, other: str) -> Check:
        async def run() -> None:
            started[me].set()
            await started[other].wait()

        return Check(me, run)

    status = Status(checks=[waiting_for("a", "b"), waiting_for("b", "a")], timeout=5)

    answer = await status.call(pb.CallRequest(), CTX)

    assert dict(answer.statuses) == {"a": OK, "b": OK}


async def test_every_part_is_reported_whatever_its_outcome() -> None:
    outcomes = [_fine, _broken, _hangs]
    checks = [Check(f"part-{i}", outcomes[i % 3]) for i in range(30)]
    status = Status(checks=checks, timeout=0.2)

    answer = await status.call(pb.CallRequest(), CTX)

    assert dict(answer.statuses) == {
        f"part-{i}": OK if i % 3 == 0 else NOT_HEALTHY for i in range(30)
    }
    assert not answer.healthy


async def test_no_checks_is_healthy_and_empty() -> None:
    answer = await Status(checks=[], timeout=1).call(pb.CallRequest(), CTX)

    assert answer.healthy
    assert dict(answer.statuses) == {}


def test_two_checks_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Status(checks=[Check("auth", _fine), Check("auth", _fine)], timeout=1)
