"""RunCheck: admins and services only; one run at a time, across processes (a lease in the
counter store); each run stores its result and reports failures; a crash is a failure,
never swallowed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import Forbidden, Unauthorized
from m3o.runtime.store import SessionFactory
from m3o.services.endtoend.alerts import Alert
from m3o.services.endtoend.proto import endtoend_pb2 as pb
from m3o.services.endtoend.run import ExampleFailure, Outcome
from m3o.services.endtoend.runner import LEASE_KEY, Runnable
from services.endtoend.support import (
    ROLES,
    SERVICE,
    Gate,
    build_world,
    call,
    settings,
    until,
)


@pytest.mark.parametrize(
    ("role", "refused"),
    [
        ("customer", Forbidden),
        ("other customer", Forbidden),
        ("anonymous", Unauthorized),
    ],
)
async def test_customers_and_anonymous_callers_may_not_start_a_run(
    sessions: SessionFactory, counters: CounterStore, role: str, refused: type[Exception]
) -> None:
    gate = Gate(Outcome())
    world = build_world(sessions, counters, gate.make)
    with pytest.raises(refused):
        await world.handler.run_check(pb.RunCheckRequest(), call("RunCheck", ROLES[role]))
    assert gate.started == []
    assert not await world.runner.running()


@pytest.mark.parametrize("role", ["admin", "service"])
async def test_admins_and_services_start_a_run_in_the_background(
    sessions: SessionFactory, counters: CounterStore, role: str
) -> None:
    gate = Gate(Outcome())
    world = build_world(sessions, counters, gate.make)
    answer = await world.handler.run_check(pb.RunCheckRequest(), call("RunCheck", ROLES[role]))
    assert answer.started
    await until(lambda: gate.started == [answer.run_id])
    assert (await world.check()).running
    gate.released.set()
    await world.runner.wait()
    checked = await world.check()
    assert (checked.healthy, checked.running, checked.result.run_id) == (
        True,
        False,
        answer.run_id,
    )
    assert world.alerts.alerts == []


async def test_one_run_at_a_time_across_processes(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    gate = Gate(Outcome())
    here = build_world(sessions, counters, gate.make)
    there = build_world(sessions, counters, gate.make)  # another process, same counter store
    first = await here.run_check()
    assert first.started
    again = await here.run_check()
    elsewhere = await there.run_check(SERVICE)
    assert (again.started, again.run_id) == (False, first.run_id)
    assert (elsewhere.started, elsewhere.run_id) == (False, first.run_id)
    await there.runner.run_scheduled()  # the cron skips its slot
    await until(lambda: len(gate.started) == 1)

    gate.released.set()
    await here.runner.wait()
    assert await counters.get_value(LEASE_KEY) is None
    after = await there.run_check()
    assert after.started
    await there.runner.wait()
    assert len(gate.started) == 2


async def test_a_failed_run_is_stored_and_reported_once(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    outcome = Outcome(signup_error="No verification code arrived within 0:02:00")
    gate = Gate(outcome)
    gate.released.set()
    world = build_world(sessions, counters, gate.make)
    await world.runner.run_scheduled()
    checked = await world.check()
    assert (checked.healthy, checked.detail) == (False, outcome.signup_error)
    assert world.alerts.alerts == [Alert(action="signup", metadata={"error": outcome.signup_error})]


async def test_one_apis_failing_examples_pass_the_run_but_are_reported(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    outcome = Outcome(example_failures=[ExampleFailure("a", "call", "t", "/v1/a/call 500")])
    gate = Gate(outcome)
    gate.released.set()
    world = build_world(sessions, counters, gate.make)
    await world.runner.run_scheduled()
    checked = await world.check()
    assert checked.healthy
    assert checked.result.error == "Error running example a call t: /v1/a/call 500"
    assert [a.action for a in world.alerts.alerts] == ["examples"]


class Crashing:
    async def run(self) -> Outcome:
        raise RuntimeError("a bug")


async def test_a_crashed_run_is_a_stored_and_reported_failure(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    def make(run_id: str) -> Runnable:
        return Crashing()

    world = build_world(sessions, counters, make)
    await world.run_check()
    await world.runner.wait()
    checked = await world.check()
    assert (checked.healthy, checked.detail) == (
        False,
        "The check failed unexpectedly (see the logs)",
    )
    assert [a.action for a in world.alerts.alerts] == ["signup"]
    assert await counters.get_value(LEASE_KEY) is None


async def test_a_run_that_takes_too_long_is_cut_short_and_fails(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    gate = Gate(Outcome())  # never released
    chosen = settings(run_timeout=timedelta(milliseconds=50))
    world = build_world(sessions, counters, gate.make, chosen)
    await world.runner.run_scheduled()
    checked = await world.check()
    assert (checked.healthy, checked.detail) == (
        False,
        "The check did not finish within 0:00:00.050000",
    )
    assert [a.action for a in world.alerts.alerts] == ["signup"]
    assert await counters.get_value(LEASE_KEY) is None


async def test_stopping_cancels_runs_which_store_nothing_and_give_the_lease_back(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    gate = Gate(Outcome())
    world = build_world(sessions, counters, gate.make)
    await world.run_check()
    await until(lambda: len(gate.started) == 1)
    await world.runner.stop()
    assert await counters.get_value(LEASE_KEY) is None
    assert not (await world.check()).HasField("result")
    assert world.alerts.alerts == []
