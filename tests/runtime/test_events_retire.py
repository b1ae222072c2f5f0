"""A retired group drops what it had not handled and gets no more events, alike on the
local event log (SQLite and PostgreSQL) and on outbox + Redis Streams (PostgreSQL)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from m3o.runtime.events._relay import stream_key
from m3o.runtime.events.tables import deliveries
from runtime.events_fixtures import (  # noqa: F401 - fixtures
    MakeBus,
    Recorder,
    engine_fixture,
    make_bus_fixture,
    signup,
)

TOPIC = "customers"
RETIRED = "mixpanel-customers"
KEPT = "emails-customers"


async def test_a_retired_group_drops_what_it_had_not_handled_and_gets_nothing_more(
    make_bus: MakeBus,
) -> None:
    first = make_bus()
    first.subscribe(TOPIC, RETIRED, Recorder())
    await first.start()
    await first.stop()  # the group exists; nobody consumes it from here on
    kept = Recorder()
    publisher = make_bus()
    publisher.subscribe(TOPIC, KEPT, kept)
    publisher.retire(TOPIC, RETIRED)
    await publisher.start()
    before = await publisher.publisher.publish_many(TOPIC, [signup("a"), signup("b")])
    await publisher.wait_idle()
    retiring = make_bus()
    retiring.retire(TOPIC, RETIRED)
    await retiring.start()
    while_retired = await publisher.publisher.publish(TOPIC, signup("c"))
    await publisher.wait_idle()

    again = Recorder()
    later = make_bus()
    later.subscribe(TOPIC, RETIRED, again)  # created anew: from the events published now
    await later.start()
    after = await later.publisher.publish(TOPIC, signup("d"))
    await later.wait_idle()
    await publisher.wait_idle()

    assert again.ids == [after]
    assert sorted(kept.ids) == sorted([*before, while_retired, after])


async def test_retiring_a_group_that_does_not_exist_changes_nothing(make_bus: MakeBus) -> None:
    kept = Recorder()
    bus = make_bus()
    bus.subscribe(TOPIC, KEPT, kept)
    bus.retire(TOPIC, RETIRED)
    bus.retire("never-published", RETIRED)
    await bus.start()
    published = await bus.publisher.publish(TOPIC, signup())
    await bus.wait_idle()

    assert kept.ids == [published]


async def test_a_retirement_that_fails_is_logged_and_the_bus_starts(
    request: pytest.FixtureRequest,
    make_bus: MakeBus,
    engine: AsyncEngine,
    redis: aioredis.Redis,
) -> None:
    if request.node.callspec.params["engine"][0] == "log":
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {deliveries.name}"))
    else:
        await redis.set(stream_key(TOPIC), "not a stream")
    bus = make_bus()
    bus.retire(TOPIC, RETIRED)

    with capture_logs() as logs:
        await bus.start()

    [failed] = [e for e in logs if e["event"] == "events.retire_failed"]
    assert (failed["topic"], failed["group"]) == (TOPIC, RETIRED)


async def test_retirements_are_checked(make_bus: MakeBus) -> None:
    bus = make_bus()
    bus.subscribe(TOPIC, KEPT, Recorder())
    bus.retire(TOPIC, RETIRED)
    bus.retire(TOPIC, RETIRED)  # asked twice: once is enough

    with pytest.raises(ValueError, match="cannot be retired"):
        bus.retire(TOPIC, KEPT)
    with pytest.raises(ValueError, match="being retired"):
        bus.subscribe(TOPIC, RETIRED, Recorder())
    with pytest.raises(ValueError, match="invalid event group"):
        bus.retire(TOPIC, "bad group")
    await bus.start()
    with pytest.raises(RuntimeError):
        bus.retire(TOPIC, "late-customers")
