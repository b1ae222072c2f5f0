"""Check: public; healthy only when the last run passed and finished within max_age; else
the last run's error, or "No recent successful check"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.endtoend import records
from m3o.services.endtoend.handler import NO_RECENT_CHECK
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from m3o.services.endtoend.run import Outcome
from m3o.services.endtoend.runner import LEASE_KEY
from services.endtoend.support import ROLES, Gate, World, build_world, call, settings
from support.services import MovableClock

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(minutes=7)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(NOW)


@pytest.fixture
def world(sessions: SessionFactory, counters: CounterStore, clock: MovableClock) -> World:
    return build_world(
        sessions, counters, Gate(Outcome()).make, settings(max_age=MAX_AGE), clock=clock
    )


async def store(world: World, run_id: str, finished: datetime, passed: bool, error: str) -> None:
    async with transaction(world.sessions) as session:
        await records.add_result(
            session,
            records.StoredResult(
                run_id=run_id,
                started=finished - timedelta(seconds=30),
                finished=finished,
                passed=passed,
                error=error,
            ),
        )


async def test_before_any_run_there_is_no_recent_successful_check(world: World) -> None:
    answer = await world.check()
    assert not answer.HasField("result")
    assert (answer.healthy, answer.detail, answer.running) == (False, NO_RECENT_CHECK, False)


async def test_a_fresh_pass_is_healthy(world: World) -> None:
    await store(world, "run-1", NOW - timedelta(minutes=6, seconds=59), True, "")
    answer = await world.check()
    assert answer.healthy
    assert answer.detail == ""
    assert answer.result.run_id == "run-1"
    assert answer.result.passed
    assert answer.result.time == int((NOW - timedelta(minutes=6, seconds=59)).timestamp())


async def test_a_stale_pass_is_no_recent_successful_check(
    world: World, clock: MovableClock
) -> None:
    await store(world, "run-1", NOW, True, "")
    clock.advance(MAX_AGE + timedelta(seconds=1))
    answer = await world.check()
    assert (answer.healthy, answer.detail) == (False, NO_RECENT_CHECK)
    assert answer.result.passed


async def test_a_failure_answers_its_error(world: World) -> None:
    await store(world, "run-1", NOW - timedelta(minutes=1), True, "")
    await store(world, "run-2", NOW, False, "No verification code arrived within 0:02:00")
    answer = await world.check()
    assert answer.healthy is False
    assert answer.detail == "No verification code arrived within 0:02:00"
    assert (answer.result.run_id, answer.result.passed) == ("run-2", False)


async def test_a_pass_that_names_one_apis_failures_is_healthy(world: World) -> None:
    await store(world, "run-1", NOW, True, "Error running example a call: boom")
    answer = await world.check()
    assert answer.healthy
    assert answer.result.error == "Error running example a call: boom"


async def test_a_run_going_on_is_shown(world: World, counters: CounterStore) -> None:
    await counters.set_value(LEASE_KEY, "run-9", ttl=timedelta(minutes=1))
    assert (await world.check()).running


@pytest.mark.parametrize("role", list(ROLES))
async def test_every_role_may_check(world: World, role: str) -> None:
    await store(world, "run-1", NOW, True, "")
    answer = await world.handler.check(pb.CheckRequest(), call("Check", ROLES[role]))
    assert answer.healthy
