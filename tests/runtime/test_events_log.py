"""The local event log keeps events while any group still needs them, and no longer."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from m3o.events.customers import Event
from m3o.runtime.event_bus import Bus
from m3o.runtime.event_log_sqlite import SqlEventSource
from m3o.runtime.event_tables import event_log
from m3o.runtime.store import SessionFactory
from runtime.events_fixtures import Recorder, signup


async def _logged(sessions: SessionFactory) -> set[str]:
    async with sessions() as session:
        return set((await session.scalars(select(event_log.c.id))).all())


async def test_prune_deletes_old_events_every_group_is_done_with(sessions: SessionFactory) -> None:
    source = SqlEventSource(sessions, retention=timedelta(0))
    bus = Bus(sessions, source, poll_interval=0.01)
    bus.subscribe("customers", "mixpanel-customers", Recorder())
    await bus.start()
    await source.channel("customers", "idle-customers", "nobody").setup(from_beginning=False)
    try:
        needed = await bus.publisher.publish("customers", signup())  # idle group has not
        unneeded = await bus.publisher.publish("projects", signup())  # no group at all
        await bus.wait_idle()
        assert await _logged(sessions) == {needed, unneeded}

        assert await source.prune() == 1
        assert await _logged(sessions) == {needed}
    finally:
        await bus.stop()


async def test_recent_events_are_kept(sessions: SessionFactory) -> None:
    source = SqlEventSource(sessions, retention=timedelta(days=7))
    bus = Bus(sessions, source, poll_interval=0.01)
    await bus.start()
    try:
        kept = await bus.publisher.publish("projects", signup())

        assert await source.prune() == 0
        assert await _logged(sessions) == {kept}
    finally:
        await bus.stop()


async def test_dead_letter_replays_after_its_event_was_pruned(sessions: SessionFactory) -> None:
    source = SqlEventSource(sessions, retention=timedelta(0))
    bus = Bus(sessions, source, poll_interval=0.01)
    broken = True
    got = Recorder(fail=lambda _delivery: broken)
    bus.subscribe("customers", "emails-customers", got, max_attempts=1)
    await bus.start()
    try:
        event_id = await bus.publisher.publish("customers", signup("c3"))
        await bus.wait_idle()
        await source.prune()
        assert await _logged(sessions) == set()

        broken = False
        [letter] = await bus.dead_letters()
        await bus.replay_dead_letter(letter.id)
        await bus.wait_idle()

        assert got.ids == [event_id, event_id]
        assert got.deliveries[-1].decode(Event) == signup("c3")
        assert got.deliveries[-1].type_name == "EventTypeSignup"
    finally:
        await bus.stop()
