"""The local event log keeps events while any group still needs them, and no longer; it
acknowledges events that finish together in one statement."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.customers import Event
from m3o.runtime.events._bus import Bus
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events._source import Claim
from m3o.runtime.events.sqlite import SqlChannel, SqlEventSource, release_claims
from m3o.runtime.events.tables import dead_letters, event_log
from m3o.runtime.store import (
    SessionFactory,
    create_engine,
    session_factory,
    sqlite_url,
    transaction,
)
from m3o.runtime.store.migrate import upgrade
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


async def _claimed(sessions: SessionFactory, count: int) -> tuple[SqlChannel, list[Claim]]:
    source = SqlEventSource(sessions)
    channel = source.channel("customers", "emails-customers", "consumer-1")
    await channel.setup(from_beginning=False)
    publisher = Bus(sessions, source).publisher
    await publisher.publish_many("customers", [signup(f"c{n}") for n in range(count)])
    claims = await channel.fetch(count, 0)
    assert len(claims) == count
    return channel, claims


async def test_acknowledgements_arriving_together_are_one_statement(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    channel, claims = await _claimed(sessions, 5)
    deletes: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    sa_event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await asyncio.gather(*(channel.ack(claim) for claim in claims))
        await channel.ack(claims[0])  # again, alone: harmless
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", seen)

    assert len(deletes) == 2
    assert await channel.outstanding() == 0


@pytest.mark.parametrize("on_driver", [False, True], ids=["session", "driver"])
async def test_a_failed_joint_acknowledgement_fails_every_caller_and_keeps_the_events(
    sessions: SessionFactory, tmp_path: Path, on_driver: bool
) -> None:
    channel, claims = await _claimed(sessions, 4)
    unreachable = create_engine(sqlite_url(str(tmp_path / "missing" / "m3o.db")))
    broken = SqlChannel(
        session_factory(unreachable),
        "customers",
        "emails-customers",
        "consumer-1",
        lease=timedelta(seconds=60),
        driver=unreachable if on_driver else None,
    )
    try:
        results = await asyncio.gather(
            *(broken.ack(claim) for claim in claims), return_exceptions=True
        )
    finally:
        await unreachable.dispose()

    assert all(isinstance(result, SQLAlchemyError) for result in results)
    assert await channel.outstanding() == 4


def _customers(claims: list[Claim]) -> list[str]:
    return [claim.delivery.decode(Event).customer.id for claim in claims]


async def test_a_claim_leases_and_reads_its_events_in_two_statements(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    source = SqlEventSource(sessions)
    channel = source.channel("customers", "emails-customers", "consumer-1")
    await channel.setup(from_beginning=False)
    await Bus(sessions, source).publisher.publish_many(
        "customers", [signup(f"c{n}") for n in range(5)]
    )
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("WITH", "SELECT", "UPDATE", "INSERT", "DELETE")):
            statements.append(statement)

    sa_event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        claims = await channel.fetch(10, 0)
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", seen)

    assert _customers(claims) == [f"c{n}" for n in range(5)]
    assert [claim.delivery.attempt for claim in claims] == [1] * 5
    assert len(statements) == 2
    assert await channel.fetch(10, 0) == []  # leased: nobody takes them again


async def test_a_drained_channel_claims_when_woken_and_finds_other_processes_events_by_polling(
    sessions: SessionFactory,
) -> None:
    source = SqlEventSource(sessions)
    channel = source.channel("customers", "emails-customers", "consumer-1")
    await channel.setup(from_beginning=False)
    publisher = Bus(sessions, source).publisher
    await publisher.publish_many("customers", [signup("c1")])
    assert _customers(await channel.fetch(10, 0)) == ["c1"]  # fewer than it could take

    await publisher.publish_many("customers", [signup("c2")])  # wakes the channel
    async with asyncio.timeout(10):  # not the 60 s poll
        assert _customers(await channel.fetch(10, 60)) == ["c2"]

    # Another process's publish wakes nobody here: the next poll finds it.
    await Bus(sessions, SqlEventSource(sessions)).publisher.publish_many(
        "customers", [signup("c3")]
    )
    assert _customers(await channel.fetch(10, 0.05)) == ["c3"]


async def test_a_claim_takes_no_more_than_its_limit(sessions: SessionFactory) -> None:
    source = SqlEventSource(sessions)
    channel = source.channel("customers", "emails-customers", "consumer-1")
    await channel.setup(from_beginning=False)
    await Bus(sessions, source).publisher.publish_many(
        "customers", [signup(f"c{n}") for n in range(8)]
    )
    assert _customers(await channel.fetch(3, 0)) == ["c0", "c1", "c2"]
    assert _customers(await channel.fetch(3, 0)) == ["c3", "c4", "c5"]
    assert _customers(await channel.fetch(3, 0)) == ["c6", "c7"]


async def test_events_written_on_the_driver_are_stored_and_delivered_as_through_sqlalchemy(
    tmp_path: Path,
) -> None:
    # The owned counters' group commit writes request events on SQLite's driver directly.
    engine = create_engine(sqlite_url(tmp_path / "log.db"))
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        source = SqlEventSource(sessions)
        channels = [source.channel("customers", group, "c-1") for group in ("one", "two")]
        for channel in channels:
            await channel.setup(from_beginning=False)
        at = datetime(2026, 12, 4, 9, 30, 1, 5, tzinfo=timezone(timedelta(hours=2)))
        by_driver = [
            dataclasses.replace(Envelope.wrap("customers", signup(f"d{n}")), time=at)
            for n in range(3)
        ]
        by_session = dataclasses.replace(Envelope.wrap("customers", signup("s")), time=at)
        writer = SqlEventSource(sessions)  # another process's: nothing handed over here
        with sqlite3.connect(tmp_path / "log.db") as db:
            writer.write_on_driver(db, by_driver)()
        with sqlite3.connect(tmp_path / "log.db") as db:  # again: already logged, not delivered
            writer.write_on_driver(db, by_driver[:1])()
        async with transaction(sessions) as session:
            await source.write(session, [by_session])

        for channel in channels:
            claims = await channel.fetch(10, 0)
            ids = sorted(c.delivery.decode(Event).customer.id for c in claims)
            assert ids == ["d0", "d1", "d2", "s"]  # one time: no order among them
            assert {c.delivery.time for c in claims} == {at}
        async with engine.connect() as conn:
            stored = {
                str(t) for (t,) in await conn.exec_driver_sql("SELECT time FROM runtime_event_log")
            }
        assert stored == {"2026-12-04 07:30:01.000005"}
    finally:
        await engine.dispose()


async def _leases(engine: AsyncEngine) -> list[tuple[str, str | None, int, bool]]:
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT group_name, owner, attempts, lease_until IS NOT NULL"
            " FROM runtime_event_deliveries ORDER BY group_name, event_id"
        )
        return [(str(g), o, int(a), bool(leased)) for g, o, a, leased in rows]


async def _handed_through(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT group_name, handed_through FROM runtime_event_groups"
        )
        return {str(group): int(through) for group, through in rows}


@dataclasses.dataclass
class DriverLog:
    """An event log in a SQLite file, written on its driver as the group commit does."""

    engine: AsyncEngine
    sessions: SessionFactory
    path: Path

    async def handed_over(self, customers: list[str]) -> SqlChannel:
        """A channel of group ``ours`` (consumer ``c-1``) on the driver, handed one signup
        event per customer."""
        source = SqlEventSource(self.sessions, driver=self.engine)
        channel = source.channel("customers", "ours", "c-1")
        await channel.setup(from_beginning=False)
        self.write(source, [Envelope.wrap("customers", signup(c)) for c in customers])()
        return channel

    def write(self, source: SqlEventSource, envelopes: list[Envelope]) -> Callable[[], None]:
        """``source``'s driver write in a committed transaction; what it hands over."""
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            return source.write_on_driver(db, envelopes)


@pytest.fixture(name="driver_log")
async def driver_log_fixture(tmp_path: Path) -> AsyncIterator[DriverLog]:
    engine = create_engine(sqlite_url(tmp_path / "log.db"))
    try:
        await upgrade(engine)
        yield DriverLog(engine, session_factory(engine), tmp_path / "log.db")
    finally:
        await engine.dispose()


async def test_events_written_on_the_driver_are_handed_to_this_processs_channels(
    driver_log: DriverLog,
) -> None:
    source = SqlEventSource(driver_log.sessions)
    ours = source.channel("customers", "ours", "c-1")
    await ours.setup(from_beginning=False)
    theirs = SqlEventSource(driver_log.sessions).channel("customers", "theirs", "c-2")
    await theirs.setup(from_beginning=False)  # a group this process does not consume
    events = [Envelope.wrap("customers", signup(f"d{n}")) for n in range(2)]

    hand_over = driver_log.write(source, events)
    # Committed, not yet handed over: no delivery rows for our group, as usual for theirs.
    assert await _leases(driver_log.engine) == [
        ("theirs", None, 0, False),
        ("theirs", None, 0, False),
    ]
    assert await ours.fetch(10, 0) == []  # nothing to claim in the database

    hand_over()
    claims = await ours.fetch(10, 0)
    assert [c.delivery.id for c in claims] == [e.id for e in events]
    assert [c.delivery.attempt for c in claims] == [1, 1]
    assert _customers(claims) == ["d0", "d1"]
    assert _customers(await theirs.fetch(10, 0)) == ["d0", "d1"]  # claimed as ever
    assert await ours.outstanding() == 2
    await ours.ack(*claims)
    assert await ours.outstanding() == 0
    assert await _handed_through(driver_log.engine) == {"ours": 2, "theirs": 0}


async def test_a_handed_over_event_its_publisher_gave_up_is_read_without_decoding(
    driver_log: DriverLog,
) -> None:
    """Its consumers get the publisher's message; one kept by its publisher, or claimed
    from the database, is decoded from the payload as ever."""
    source = SqlEventSource(driver_log.sessions)
    ours = source.channel("customers", "ours", "c-1")
    await ours.setup(from_beginning=False)
    theirs = SqlEventSource(driver_log.sessions).channel("customers", "theirs", "c-2")
    await theirs.setup(from_beginning=False)
    given, kept = signup("given"), signup("kept")
    driver_log.write(
        source,
        [Envelope.wrap("customers", given, given=True), Envelope.wrap("customers", kept)],
    )()

    handed = await ours.fetch(10, 0)
    assert handed[0].delivery.decode(Event) is given
    assert handed[1].delivery.decode(Event) is not kept
    assert handed[1].delivery.decode(Event) == kept
    claimed = await theirs.fetch(10, 0)
    assert [c.delivery.decode(Event) for c in claimed] == [given, kept]
    assert all(c.delivery.decode(Event) is not given for c in claimed)


async def test_a_channel_without_room_claims_the_events_instead(
    driver_log: DriverLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("m3o.runtime.events.sqlite.HANDOVER_LIMIT", 2)
    source = SqlEventSource(driver_log.sessions)
    channel = source.channel("customers", "ours", "c-1")
    await channel.setup(from_beginning=False)
    events = [Envelope.wrap("customers", signup(f"d{n}")) for n in range(3)]

    driver_log.write(source, events)()

    assert {owner for _g, owner, _a, _l in await _leases(driver_log.engine)} == {None}
    claims = await channel.fetch(10, 0)
    assert _customers(claims) == ["d0", "d1", "d2"]
    assert [c.delivery.attempt for c in claims] == [1, 1, 1]


async def test_events_handed_over_and_not_fetched_are_given_back_on_close(
    driver_log: DriverLog,
) -> None:
    source = SqlEventSource(driver_log.sessions)
    stopping = source.channel("customers", "ours", "c-1")
    await stopping.setup(from_beginning=False)
    driver_log.write(source, [Envelope.wrap("customers", signup("d0"))])()

    await stopping.close()

    later = SqlEventSource(driver_log.sessions).channel("customers", "ours", "c-2")
    claims = await later.fetch(10, 0)
    assert _customers(claims) == ["d0"]
    assert claims[0].delivery.attempt == 2  # the handover counted as an attempt


async def test_events_handed_over_and_not_settled_before_a_crash_are_delivered_at_the_start(
    driver_log: DriverLog,
) -> None:
    crashed = await driver_log.handed_over(["d0", "d1", "d2", "d3"])
    claims = await crashed.fetch(10, 0)
    await crashed.ack(claims[0], claims[2])  # d1 unsettled, then d2 settled after it
    # The process dies here: its channel is neither closed nor told.

    assert await release_claims(driver_log.engine) == 3  # d1, d2 (after d1), d3
    later = SqlEventSource(driver_log.sessions).channel("customers", "ours", "c-2")
    again = await later.fetch(10, 0)
    assert _customers(again) == ["d1", "d2", "d3"]  # at least once: d0 alone is settled
    assert [c.delivery.attempt for c in again] == [2, 2, 2]  # the handover was one
    await later.ack(*again)
    assert await release_claims(driver_log.engine) == 0
    assert await later.outstanding() == 0


async def test_a_handed_over_event_dead_lettered_or_released_is_settled_and_not_lost(
    driver_log: DriverLog,
) -> None:
    channel = await driver_log.handed_over(["d0", "d1", "d2"])
    dead, released, acked = await channel.fetch(10, 0)

    await channel.dead_letter(dead, "gave up")
    await channel.release(released)
    await channel.ack(acked)

    async with driver_log.sessions() as session:
        letters = list(await session.scalars(select(dead_letters.c.event_id)))
    assert letters == [dead.delivery.id]
    assert _customers(await channel.fetch(10, 0)) == ["d1"]  # the released one, claimed
    assert await _handed_through(driver_log.engine) == {"ours": 3}
    assert await release_claims(driver_log.engine) == 1  # d1's claim, not a handover


async def test_a_handed_over_event_whose_settlement_failed_is_claimed_again(
    driver_log: DriverLog,
) -> None:
    channel = await driver_log.handed_over(["d0", "d1"])
    failed, acked = await channel.fetch(10, 0)

    channel.forget(failed)  # what the bus does when settling it raised
    await channel.ack(acked)  # the next acknowledgement gives it a row

    again = await channel.fetch(10, 0)
    assert _customers(again) == ["d0"]
    await channel.ack(*again)
    assert await channel.outstanding() == 0
    assert await _handed_through(driver_log.engine) == {"ours": 2}


async def test_handed_over_events_are_pruned_once_every_group_settled_them(
    driver_log: DriverLog,
) -> None:
    source = SqlEventSource(driver_log.sessions, driver=driver_log.engine, retention=timedelta(0))
    fast, slow = (source.channel("customers", group, "c-1") for group in ("fast", "slow"))
    for channel in (fast, slow):
        await channel.setup(from_beginning=False)
    driver_log.write(source, [Envelope.wrap("customers", signup(f"d{n}")) for n in range(2)])()
    await fast.ack(*await fast.fetch(10, 0))
    [first, second] = await slow.fetch(10, 0)

    assert await source.prune() == 0  # slow has settled neither
    await slow.ack(first)
    assert await source.prune() == 1
    await slow.ack(second)
    assert await source.prune() == 1
    assert await _logged(driver_log.sessions) == set()

    # Every rowid was pruned: the next event's is handed out again, and the groups'
    # handed_through went back with the log, so a crash still finds it.
    driver_log.write(source, [Envelope.wrap("customers", signup("next"))])()
    assert await release_claims(driver_log.engine) == 2
    claims = (
        await SqlEventSource(driver_log.sessions).channel("customers", "slow", "c-2").fetch(10, 0)
    )
    assert _customers(claims) == ["next"]


async def test_a_retry_is_claimed_when_due_while_handovers_keep_coming(
    driver_log: DriverLog,
) -> None:
    source = SqlEventSource(driver_log.sessions, gather=timedelta(milliseconds=10))
    channel = source.channel("customers", "ours", "c-1")
    await channel.setup(from_beginning=False)
    driver_log.write(source, [Envelope.wrap("customers", signup("first"))])()
    [first] = await channel.fetch(10, 0.2)
    await channel.retry(first, datetime.now(UTC) + timedelta(milliseconds=300), "failed")

    fetched: list[Claim] = []
    async with asyncio.timeout(10):
        while not any(c.delivery.id == first.delivery.id for c in fetched):
            # a new call's event handed over before every fetch: the channel is always woken
            driver_log.write(source, [Envelope.wrap("customers", signup("next"))])()
            fetched += await channel.fetch(10, 0.2)

    [again] = [c for c in fetched if c.delivery.id == first.delivery.id]
    assert again.delivery.attempt == 2


async def test_a_publish_told_while_a_claim_runs_is_claimed_next_not_at_the_poll(
    sessions: SessionFactory,
) -> None:
    channel = SqlEventSource(sessions, gather=timedelta(0)).channel("customers", "ours", "c-1")
    await channel.setup(from_beginning=False)
    other = Bus(sessions, SqlEventSource(sessions)).publisher  # tells nobody here
    claim = channel._claim

    async def claim_then_told(limit: int) -> list[Claim]:
        found = await claim(limit)
        # Committed after the claim read the log, and told before the claim returned.
        await other.publish("customers", signup("during"))
        channel.wake()
        return found

    await other.publish("customers", signup("before"))
    channel._claim = claim_then_told  # type: ignore[method-assign]
    assert _customers(await channel.fetch(10, 0.05)) == ["before"]
    channel._claim = claim  # type: ignore[method-assign]

    async with asyncio.timeout(10):  # not the 60 s poll
        assert _customers(await channel.fetch(10, 60)) == ["during"]


async def _two_groups_claimed(
    sessions: SessionFactory, driver: AsyncEngine | None, count: int
) -> tuple[SqlChannel, SqlChannel, list[Claim]]:
    source = SqlEventSource(sessions, driver=driver)
    acked, other = (source.channel("customers", group, "c-1") for group in ("acked", "other"))
    for channel in (acked, other):
        await channel.setup(from_beginning=False)
    await Bus(sessions, source).publisher.publish_many(
        "customers", [signup(f"c{n}") for n in range(count)]
    )
    claims = await acked.fetch(count, 0)
    assert len(claims) == count
    return acked, other, claims


async def _acknowledge_one_group(sessions: SessionFactory, driver: AsyncEngine | None) -> None:
    acked, other, claims = await _two_groups_claimed(sessions, driver, 4)

    await asyncio.gather(*(acked.ack(claim) for claim in claims[:3]))

    assert await acked.outstanding() == 1
    assert await other.outstanding() == 4
    await acked.ack(claims[3])
    await acked.ack(claims[0])  # again: harmless
    assert await acked.outstanding() == 0
    assert await other.outstanding() == 4
    assert len(await _logged(sessions)) == 4


async def test_an_acknowledgement_deletes_its_groups_deliveries_only(
    sessions: SessionFactory,
) -> None:
    await _acknowledge_one_group(sessions, None)


async def test_an_acknowledgement_on_the_driver_deletes_its_groups_deliveries_only(
    driver_log: DriverLog,
) -> None:
    await _acknowledge_one_group(driver_log.sessions, driver_log.engine)


async def test_acknowledgements_arriving_together_are_one_statement_on_the_driver(
    driver_log: DriverLog,
) -> None:
    acked, _, claims = await _two_groups_claimed(driver_log.sessions, driver_log.engine, 5)
    statements: list[str] = []

    async def trace(callback: Callable[[str], object] | None) -> None:
        async with driver_log.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.run(lambda db: db.set_trace_callback(callback))

    await trace(statements.append)
    try:
        await asyncio.gather(*(acked.ack(claim) for claim in claims))
    finally:
        await trace(None)

    deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 1
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert await acked.outstanding() == 0
