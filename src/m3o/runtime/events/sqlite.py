"""The ``local`` profile's events: a durable log in the service database itself.

Publishing writes the event to ``runtime_event_log`` and, in the same statement batch and
transaction, one ``runtime_event_deliveries`` row for every group of the topic: that row is
the group's ack state for the event. A consumer claims due rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite transactions are serial anyway) with a lease it renews while the
handler runs; acknowledging deletes the row, a failure moves ``available_at`` to the end of
the backoff. A consumer that dies mid-event leaves its lease to expire, and the group gets
the event again, so delivery is at least once.

Plain SQL, so it runs on PostgreSQL too. There, one race remains on a group's very first
start: an event whose transaction reads the topic's groups before a brand-new group is
committed, and commits after it, is not delivered to that group. SQLite serialises writers,
so it cannot happen there.

Consumers poll every ``poll_interval`` and are woken at once by publishes of this process.
Events stay in the log for ``retention`` once every group is done with them.

Handed over, not claimed: events the owned counter store's group commit writes (every
metered call's request event, :meth:`SqlEventSource.write_on_driver`) go straight to this
process's consumers of their groups once the commit is done: no claim transaction, no
reading them back, and no delivery row for those groups (the log marks them ``handed``).
A delivery row was two b-trees written in the call's commit and deleted on acknowledgement,
most of that commit's work. Instead each group keeps ``handed_through``, the log rowid up to
which every event handed over to it is settled: acknowledged, or given a delivery row
(a retry, a release, a dead letter, a close). The channel acknowledging a batch moves it
forward in the same statement batch, to just before the oldest handed-over event it has
not settled. SQLite gives a new row the newest rowid + 1, so a prune that removed the
newest rows moves every ``handed_through`` back to the newest rowid left.

A crash loses the events handed over and not settled, in memory only; the ones after the
group's ``handed_through`` that have no row for it get one at the next start
(:func:`release_claims`, which ``m3o serve`` runs before anything is handed over), their
handover counted as an attempt. An event settled after the oldest one left unsettled is
delivered again then: at least once, as ever. The same holds within a run for an event
whose settlement failed: it gets its row at the channel's next acknowledgement or lease
renewal. A channel holds at most :data:`HANDOVER_LIMIT` events not yet fetched; beyond
that they get rows and the channel claims them as usual.

Acknowledged on the driver: with its SQLite engine (``sql_event_log`` passes it), a
channel deletes acknowledged deliveries with one statement sent to SQLite's driver in a
transaction of its own (:func:`~m3o.runtime.store.inline_sqlite.driver_transaction`):
0.15 ms, against 1.1-1.4 ms for the same ``DELETE`` through SQLAlchemy's session, and
under ``m3o serve``'s load every consumer of request events acknowledges a batch every
tenth of a second on the loop the calls run on.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

from google.protobuf.message import Message
from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from m3o.runtime.events import DeadLetter, Delivery
from m3o.runtime.events._acks import JointAcks, Take
from m3o.runtime.events._bus import Bus
from m3o.runtime.events._dead_letters import add_dead_letter
from m3o.runtime.events._outbox import Envelope
from m3o.runtime.events._source import Claim
from m3o.runtime.events.tables import deliveries, event_log, groups
from m3o.runtime.logging import get_logger
from m3o.runtime.store import (
    SessionFactory,
    UTCDateTime,
    is_sqlite,
    session_factory,
    transaction,
)
from m3o.runtime.store.inline_sqlite import (
    driver_transaction,
    in_driver_batches,
    parameter_marks,
    stored_by_sqlalchemy,
)

__all__ = [
    "HANDOVER_LIMIT",
    "SqlChannel",
    "SqlEventSource",
    "release_claims",
    "sql_event_bus",
    "sql_event_log",
]

_log = get_logger(__name__)

DEFAULT_GATHER = timedelta(milliseconds=100)
"""How long a woken consumer lets more events arrive before it claims (20 ms until
claims ran on the loop's thread: ``m3o serve`` under load served 981 calls/s with 20 ms,
1,102 with 100 ms, one client p90 +6.7 / +4.6 ms; the events reach usage 80 ms later)."""
HANDOVER_LIMIT = 10_000
"""Events handed over to a channel and not yet fetched, at most (see the module)."""


class _LogOptions(TypedDict, total=False):
    """:func:`sql_event_log`'s keyword arguments (their defaults are there)."""

    poll_interval: float
    lease: timedelta
    retention: timedelta
    outage_backoff_max: float
    consumer: str | None
    gather: timedelta


def sql_event_bus(engine: AsyncEngine, **options: Unpack[_LogOptions]) -> Bus:
    """The event bus of the ``local`` profile (the log lives in ``engine``'s database);
    ``options``: see :func:`sql_event_log`."""
    bus, _source = sql_event_log(engine, **options)
    return bus


def sql_event_log(
    engine: AsyncEngine,
    *,
    poll_interval: float = 1.0,
    lease: timedelta = timedelta(seconds=60),
    retention: timedelta = timedelta(days=7),
    outage_backoff_max: float = 10.0,
    consumer: str | None = None,
    gather: timedelta = DEFAULT_GATHER,
) -> tuple[Bus, SqlEventSource]:
    """The event bus of the ``local`` profile (the log lives in ``engine``'s database), and
    its source: the owned counter store's group commit writes with its
    :meth:`~SqlEventSource.write_on_driver`.

    ``lease`` is how long a consumer that stopped answering keeps an event before others
    may take it (renewed every third of it while the handler runs). ``gather``: see
    :class:`SqlChannel`.
    """
    sessions = session_factory(engine)
    source = SqlEventSource(
        sessions,
        lease=lease,
        retention=retention,
        gather=gather,
        driver=engine if is_sqlite(engine) else None,
    )
    bus = Bus(
        sessions,
        source,
        poll_interval=poll_interval,
        renew_every=lease.total_seconds() / 3,
        outage_backoff_max=outage_backoff_max,
        consumer=consumer,
    )
    return bus, source


async def release_claims(engine: AsyncEngine) -> int:
    """Free every consumer's claim on the log, as if each lease had run out, and give the
    events handed over to them and not settled their delivery rows again (SQLite; see the
    module); how many deliveries that made due.

    For the one process that holds the database (``m3o serve``, which locks it) as it
    starts, before anything is handed over: no other consumer can hold a claim, so what a
    killed predecessor's consumers held is handled at once rather than a lease (60 s)
    later. The attempts they made still count toward each event's limit (a handover is
    one).
    """
    release = (
        update(deliveries)
        .where(deliveries.c.owner.is_not(None))
        .values(owner=None, lease_until=None)
    )
    async with engine.begin() as conn:
        result = await conn.execute(release)
        released = int(result.rowcount)
        if conn.dialect.name == "sqlite":
            cursors = select(groups.c.topic, groups.c.group_name, groups.c.handed_through).where(
                groups.c.handed_through.is_not(None)
            )
            for topic, group, through in (await conn.execute(cursors)).all():
                # One group at a time: its events after ``through`` are a range of rowids.
                bounds = {"topic": topic, "group": group, "through": through}
                released += int((await conn.execute(_recovering(), bounds)).rowcount)
            await conn.execute(
                update(groups)
                .where(groups.c.handed_through.is_not(None))
                .values(handed_through=_newest_rowid())
            )
    return released


def _newest_rowid() -> Any:
    """The log's newest rowid (SQLite), 0 when empty."""
    return select(func.coalesce(func.max(_ROWID), 0)).select_from(event_log).scalar_subquery()


_ROWID: ColumnElement[int] = literal_column(f"{event_log.name}.rowid", Integer)


@functools.cache
def _recovering() -> Any:
    """Delivery rows for the events of ``topic`` handed over after ``through`` that have none
    for ``group`` (a crashed consumer's, their handover counted as an attempt)."""
    topic = bindparam("topic", type_=String())
    group = bindparam("group", type_=String())
    return _fan_out(
        select(topic, group, event_log.c.id, literal(1, Integer), event_log.c.time).where(
            bindparam("through", type_=Integer()) < _ROWID,
            event_log.c.topic == topic,
            event_log.c.handed,
            ~exists().where(
                deliveries.c.topic == topic,
                deliveries.c.group_name == group,
                deliveries.c.event_id == event_log.c.id,
            ),
        )
    )


class SqlEventSource:
    """The event log tables as an :class:`~m3o.runtime.events._bus.EventSource`."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        lease: timedelta = timedelta(seconds=60),
        retention: timedelta = timedelta(days=7),
        prune_every: timedelta = timedelta(hours=1),
        gather: timedelta = DEFAULT_GATHER,
        driver: AsyncEngine | None = None,
    ) -> None:
        """``driver``: the engine of ``sessions`` when it is SQLite's (inline), for the
        channels' acknowledgements (see the module)."""
        self._sessions = sessions
        self._lease = lease
        self._gather = gather
        self._driver = driver
        self._retention = retention
        self._prune_every = prune_every
        self._channels: list[SqlChannel] = []
        self._consumer = ""
        """The consumer of this source's channels (its bus's; the first channel's)."""

    async def write(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        """The events into the log, and one delivery per event and group of its topic: two
        statements however many events there are.

        An event whose id the log already has is left as it is and not delivered again (a
        gateway recovering a crashed one publishes the events it may have published
        already, with their ids): publishing it again is harmless, never an error.
        """
        conn = await session.connection()
        rows = {envelope.id: _log_row(envelope) for envelope in envelopes}
        add, deliver = _writing(conn.dialect.name)
        added = await conn.scalars(add, list(rows.values()))
        fresh = list(added.all())
        if not fresh:
            return
        await conn.execute(deliver, {"fresh_ids": fresh})

    def write_on_driver(
        self, db: sqlite3.Connection, envelopes: Sequence[Envelope]
    ) -> Callable[[], None]:
        """:meth:`write` on SQLite's own connection, inside its transaction, without
        SQLAlchemy's execution layer, for the owned counter store's group commit: the
        events (returning the ids that were new, and their rowids) and a delivery per new
        id and group of its topic, but for the groups whose channel in this process has
        room: those are handed the events instead (see the module). Returns what to do once
        the transaction has committed: hand the new events to those channels, and wake the
        others."""
        by_topic: dict[str, list[Envelope]] = {}
        for envelope in envelopes:
            by_topic.setdefault(envelope.topic, []).append(envelope)
        taking: dict[str, list[SqlChannel]] = {}
        woken: list[SqlChannel] = []
        for topic, events in by_topic.items():
            local = [channel for channel in self._channels if channel.topic == topic]
            taking[topic] = [
                channel
                for channel in local
                if channel.consumer == self._consumer and channel.has_room(len(events))
            ]
            woken += [channel for channel in local if channel not in taking[topic]]
        fresh: dict[str, list[tuple[Envelope, int]]] = {}
        by_id = {envelope.id: envelope for envelope in envelopes}
        for part in in_driver_batches(envelopes):
            values = [
                value
                for envelope in part
                for value in _driver_log_row(envelope, bool(taking[envelope.topic]))
            ]
            marks = parameter_marks(len(part), _LOG_MARKS)
            for event_id, rowid in db.execute(_ADD_SQL.format(rows=marks), values).fetchall():
                envelope = by_id[str(event_id)]
                fresh.setdefault(envelope.topic, []).append((envelope, int(rowid)))
        for topic, logged in fresh.items():
            names = [channel.group for channel in taking[topic]]
            if not _groups_besides(db, topic, names):
                continue  # every group of the topic was handed the events
            for part_logged in in_driver_batches(logged):
                _deliver_on_driver(db, [envelope.id for envelope, _ in part_logged], names)

        def hand_over() -> None:
            for topic, logged in fresh.items():
                claims = [
                    (_claim(envelope, 1, envelope.message), rowid) for envelope, rowid in logged
                ]
                for channel in taking[topic]:
                    channel.take_over(claims)
            for channel in woken:
                channel.wake()

        return hand_over

    def channel(self, topic: str, group: str, consumer: str) -> SqlChannel:
        self._consumer = self._consumer or consumer
        made = SqlChannel(
            self._sessions,
            topic,
            group,
            consumer,
            lease=self._lease,
            gather=self._gather,
            driver=self._driver,
        )
        self._channels.append(made)
        return made

    async def requeue(self, session: AsyncSession, letter: DeadLetter) -> None:
        logged = await session.scalar(
            select(event_log.c.id).where(event_log.c.id == letter.event_id)
        )
        if logged is None:  # pruned meanwhile: the dead letter has everything to restore it
            await session.execute(
                insert(event_log).values(
                    id=letter.event_id,
                    topic=letter.topic,
                    type_name=letter.type_name,
                    time=letter.time,
                    payload=letter.payload,
                )
            )
        key = _key(letter.topic, letter.group, letter.event_id)
        if await session.scalar(select(deliveries.c.event_id).where(key)) is None:
            await session.execute(
                insert(deliveries).values(
                    topic=letter.topic,
                    group_name=letter.group,
                    event_id=letter.event_id,
                    attempts=0,
                    available_at=datetime.now(UTC),
                )
            )

    async def retire(self, topic: str, group: str) -> bool:
        """The group's row and its deliveries deleted, in one transaction: its events stay
        in the log for the other groups (and are pruned once they are done with them)."""
        async with transaction(self._sessions) as session:
            dropped = await session.execute(
                delete(deliveries).where(
                    deliveries.c.topic == topic, deliveries.c.group_name == group
                )
            )
            removed = await session.execute(
                delete(groups).where(groups.c.topic == topic, groups.c.group_name == group)
            )
        existed = bool(getattr(removed, "rowcount", 0))
        if existed:
            _log.info(
                "events.group_retired",
                topic=topic,
                group=group,
                dropped=int(getattr(dropped, "rowcount", 0) or 0),
            )
        return existed

    async def backlog(self) -> int:
        return 0

    async def run(self, stopping: asyncio.Event) -> None:
        while not await _wait(stopping, self._prune_every.total_seconds()):
            try:
                await self.prune()
            except Exception as exc:  # noqa: BLE001 - pruning is retried next time
                _log.warning("events.prune_failed", error=repr(exc))

    async def prune(self) -> int:
        """Delete events older than the retention that every group is done with."""
        cutoff = datetime.now(UTC) - self._retention
        async with transaction(self._sessions) as session:
            dialect = (await session.connection()).dialect.name
            done = [event_log.c.time < cutoff, _done(dialect)]
            if dialect == "sqlite":
                done.append(_handed_done())
            result = await session.execute(delete(event_log).where(*done))
            if dialect == "sqlite":
                # SQLite gives a new row the newest rowid + 1: were the newest rows pruned,
                # rowids a group's handed_through already passed would be handed out again.
                newest = _newest_rowid()
                await session.execute(
                    update(groups)
                    .where(groups.c.handed_through > newest)
                    .values(handed_through=newest)
                )
        return int(getattr(result, "rowcount", 0) or 0)

    async def flush(self) -> None:
        return None

    def wake(self, topic: str) -> None:
        for channel in self._channels:
            if channel.topic == topic:
                channel.wake()


class SqlChannel:
    """One group of one topic in the event log, as consumer ``consumer`` sees it.

    A fetch that took fewer events than it could left nothing due: the next one waits for a
    publish of this process (or the poll, which finds other processes' events, retries and
    lapsed leases) instead of spending a transaction finding nothing. Woken by a publish,
    it lets ``gather`` pass first, so the events published meanwhile (one a call at a time
    when calls come one by one) share its batch rather than each costing a claim or a
    handover, an acknowledgement and a handler's batch; the events wait that much longer.
    Events handed over (see the module) are taken without a claim; the database is claimed
    from only when it may hold more (a publish not handed over, a full claim, the poll).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        topic: str,
        group: str,
        consumer: str,
        *,
        lease: timedelta,
        gather: timedelta = DEFAULT_GATHER,
        driver: AsyncEngine | None = None,
    ) -> None:
        self.topic = topic
        self.group = group
        self._sessions = sessions
        self._driver = driver
        self._consumer = consumer
        self._lease = lease
        self._held: set[str] = set()
        self._handed: deque[Claim] = deque()
        """Events handed over, not yet fetched."""
        self._unsettled: OrderedDict[str, int] = OrderedDict()
        """Events handed over and not settled, by id: their log rowids, in handover order
        (which is the rowids' order)."""
        self._handed_max = 0
        """The newest rowid handed over."""
        self._through = 0
        """The group's ``handed_through`` as last written here."""
        self._orphans: list[str] = []
        """Handed-over events whose settlement failed: rows for them at the next chance."""
        self._ready = False
        """Whether the group exists (set up): only then is anything handed over."""
        self._woken = asyncio.Event()
        self._look = True
        """Whether the database may hold events for this channel that it has not claimed:
        at the start, after a publish that was not handed over, after a full claim, and at
        each poll."""
        self._looked_at = float("-inf")
        """When the database was last claimed from (the loop's clock)."""
        self._caught_up = False
        """Whether the last fetch found fewer events than it could take."""
        self._gather = gather.total_seconds()
        self._acks = JointAcks(self._delete_acknowledged)
        self._claiming = _claiming(self._group(), consumer)

    async def setup(self, from_beginning: bool) -> None:
        try:
            async with transaction(self._sessions) as session:
                known = await session.scalar(
                    select(groups.c.group_name).where(
                        groups.c.topic == self.topic, groups.c.group_name == self.group
                    )
                )
                if known is not None:
                    self._ready = True
                    return
                through = None
                if (await session.connection()).dialect.name == "sqlite":
                    # Nothing logged so far was handed over to this new group.
                    through = _newest_rowid()
                await session.execute(
                    insert(groups).values(
                        topic=self.topic,
                        group_name=self.group,
                        created=datetime.now(UTC),
                        handed_through=through,
                    )
                )
                if from_beginning:
                    await session.execute(
                        _fan_out(
                            select(
                                event_log.c.topic,
                                literal(self.group, String),
                                event_log.c.id,
                                literal(0, Integer),
                                event_log.c.time,
                            ).where(event_log.c.topic == self.topic)
                        )
                    )
        except IntegrityError:
            self._ready = True
            return  # another consumer created the group at the same moment
        self._ready = True
        _log.info("events.group_created", topic=self.topic, group=self.group)

    @property
    def consumer(self) -> str:
        return self._consumer

    def has_room(self, count: int) -> bool:
        """Whether ``count`` more events can be handed over (see the module)."""
        return self._ready and len(self._handed) + count <= HANDOVER_LIMIT

    def take_over(self, claims: Sequence[tuple[Claim, int]]) -> None:
        """Events committed without delivery rows for this group, with their log rowids:
        fetched next."""
        if claims:
            self._handed.extend(claim for claim, _ in claims)
            self._unsettled.update({claim.receipt: rowid for claim, rowid in claims})
            self._handed_max = max(self._handed_max, *(rowid for _, rowid in claims))
        self._woken.set()

    async def fetch(self, limit: int, wait: float) -> list[Claim]:
        loop = asyncio.get_running_loop()
        if self._caught_up and wait > 0 and len(self._handed) < limit:  # see the class
            woken = self._woken.is_set() or await _wait(self._woken, wait)
            if woken and self._gather > 0:
                await asyncio.sleep(self._gather)
        if wait > 0 and loop.time() - self._looked_at >= wait:
            # The poll: retries, lapsed leases, other processes' events; due even while
            # handovers keep waking the channel.
            self._look = True
        self._woken.clear()
        claims = [self._handed.popleft() for _ in range(min(limit, len(self._handed)))]
        room = limit - len(claims)
        if room > 0 and self._look:
            self._look = False  # a publish while the claim runs sets it again
            try:
                found = await self._claim(room)
            except BaseException:
                self._look = True
                raise
            self._looked_at = loop.time()
            if len(found) == room:  # a full claim: more may be due
                self._look = True
            claims += found
        self._caught_up = len(claims) < limit
        return claims

    async def _claim(self, limit: int) -> list[Claim]:
        """Take up to ``limit`` due events: one ``UPDATE .. RETURNING`` leases them (on
        PostgreSQL the rows it picks skip those other consumers have locked), one
        ``SELECT`` reads them from the log. Both are built once (see :func:`_claiming`)."""
        now = datetime.now(UTC)
        lease, read = self._claiming
        bounds = {"claim_now": now, "claim_until": now + self._lease, "claim_limit": limit}
        async with transaction(self._sessions) as session:
            taken = sorted((await session.execute(lease, bounds)).all(), key=lambda row: row[2])
            if not taken:
                return []
            attempts = {str(row[0]): int(row[1]) for row in taken}
            logged = {
                row.id: row for row in await session.execute(read, {"claim_ids": list(attempts)})
            }
            lost = [event_id for event_id in attempts if event_id not in logged]
            if lost:  # the log lost the event: nothing can ever be delivered
                _log.error("events.missing_from_log", topic=self.topic, event_ids=sorted(lost))
                await session.execute(
                    delete(deliveries).where(self._group(), deliveries.c.event_id.in_(lost))
                )
        claims = [
            _claim(logged[event_id], attempts[event_id])
            for event_id in attempts
            if event_id in logged
        ]
        self._held.update(claim.receipt for claim in claims)
        return claims

    async def ack(self, *claims: Claim) -> None:
        """Done with ``claims``. Acknowledgements that arrive while one waits for the
        database join it: one statement, one commit (each returns once it is committed,
        and raises if that failed, so the events are delivered again)."""
        receipts = [claim.receipt for claim in claims]
        self._held.difference_update(receipts)
        await self._acks.ack(*receipts)

    async def _delete_acknowledged(self, take: Take) -> None:
        await self._write_settling(lambda: self._settling(take()))

    async def _write_settling(self, make: Callable[[], tuple[_Settling, list[str]]]) -> None:
        """One transaction writing what ``make`` returns (called at the database's turn, so
        acknowledgements arriving later start anew), then the handed-over events it settles
        are settled here too."""
        if self._driver is not None:
            async with driver_transaction(self._driver) as db:
                settling, settled = make()
                await db.run(functools.partial(_settle_on_driver, settling))
        else:
            async with transaction(self._sessions) as session:
                await session.connection()
                settling, settled = make()
                await _settle_in_session(session, settling)
        self._settled(settled, settling.through, rows=bool(settling.given_rows))

    def _settling(self, receipts: list[str]) -> tuple[_Settling, list[str]]:
        """What acknowledging ``receipts`` writes (rows again for the orphans too), and the
        handed-over events it settles."""
        handed = [receipt for receipt in receipts if receipt in self._unsettled]
        orphans = [receipt for receipt in self._orphans if receipt in self._unsettled]
        settling = _Settling(
            self.topic,
            self.group,
            deleted=[receipt for receipt in receipts if receipt not in self._unsettled],
            given_rows=orphans,
            through=self._through_once(handed + orphans),
        )
        return settling, handed + orphans

    def _through_once(self, settling: list[str]) -> int | None:
        """``handed_through`` once ``settling`` are settled; None: where it is."""
        going = set(settling)
        through = self._handed_max
        for receipt, rowid in self._unsettled.items():
            if receipt not in going:
                through = rowid - 1
                break
        return through if through > self._through else None

    def _settled(self, receipts: list[str], through: int | None, *, rows: bool = False) -> None:
        """``receipts`` settled (``rows``: given delivery rows, to be claimed)."""
        for receipt in receipts:
            self._unsettled.pop(receipt, None)
        if rows:
            self._look = True
        if receipts and self._orphans:
            self._orphans = [receipt for receipt in self._orphans if receipt in self._unsettled]
        if through is not None:
            self._through = max(self._through, through)

    async def _give_row(self, claim: Claim, **values: Any) -> None:
        """A delivery row for a handed-over event (settling it), with ``values``."""
        row = {
            "topic": self.topic,
            "group_name": self.group,
            "event_id": claim.receipt,
            "attempts": claim.delivery.attempt,
            "available_at": datetime.now(UTC),
            **values,
        }
        async with transaction(self._sessions) as session:
            await session.execute(sqlite.insert(deliveries).values(row).on_conflict_do_nothing())
        self._settled([claim.receipt], None, rows=True)

    async def retry(self, claim: Claim, at: datetime, error: str) -> None:
        self._held.discard(claim.receipt)
        if claim.receipt in self._unsettled:
            await self._give_row(claim, available_at=at, last_error=error)
            return
        async with transaction(self._sessions) as session:
            await session.execute(
                update(deliveries)
                .where(self._key(claim), deliveries.c.owner == self._consumer)
                .values(available_at=at, owner=None, lease_until=None, last_error=error)
            )

    async def dead_letter(self, claim: Claim, error: str) -> None:
        self._held.discard(claim.receipt)
        if claim.receipt in self._unsettled:
            async with transaction(self._sessions) as session:
                await add_dead_letter(session, self.group, claim.delivery, error)
            self._settled([claim.receipt], None)
            return
        async with transaction(self._sessions) as session:
            removed = await session.execute(
                delete(deliveries).where(self._key(claim), deliveries.c.owner == self._consumer)
            )
            if getattr(removed, "rowcount", 0) == 1:  # still ours: nobody else took it over
                await add_dead_letter(session, self.group, claim.delivery, error)

    async def release(self, claim: Claim) -> None:
        self._held.discard(claim.receipt)
        if claim.receipt in self._unsettled:
            await self._give_row(claim)
            return
        async with transaction(self._sessions) as session:
            await session.execute(
                update(deliveries)
                .where(self._key(claim), deliveries.c.owner == self._consumer)
                .values(owner=None, lease_until=None)
            )

    def forget(self, claim: Claim) -> None:
        self._held.discard(claim.receipt)
        if claim.receipt in self._unsettled:  # no lease to lapse: a row at the next chance
            self._orphans.append(claim.receipt)

    async def renew(self) -> None:
        if self._orphans:
            await self._give_rows(list(self._orphans))
        if not self._held:
            return
        async with transaction(self._sessions) as session:
            await session.execute(
                update(deliveries)
                .where(
                    self._group(),
                    deliveries.c.owner == self._consumer,
                    deliveries.c.event_id.in_(list(self._held)),
                )
                .values(lease_until=datetime.now(UTC) + self._lease)
            )

    async def outstanding(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(deliveries).where(self._group())
            )
        return int(count or 0) + len(self._unsettled)

    async def close(self) -> None:
        """Give back what was handed over and not settled: delivery rows for it."""
        self._handed.clear()
        if self._unsettled:
            await self._give_rows(list(self._unsettled))

    async def _give_rows(self, receipts: list[str]) -> None:
        """Delivery rows for handed-over events (their handover an attempt), and the group's
        ``handed_through`` moved past them, in one transaction."""

        def rows() -> tuple[_Settling, list[str]]:
            through = self._through_once(receipts)
            return _Settling(self.topic, self.group, [], receipts, through), receipts

        await self._write_settling(rows)

    def wake(self) -> None:
        self._look = True
        self._woken.set()

    def _group(self) -> ColumnElement[bool]:
        return and_(deliveries.c.topic == self.topic, deliveries.c.group_name == self.group)

    def _key(self, claim: Claim) -> ColumnElement[bool]:
        return _key(self.topic, self.group, claim.receipt)


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _done(dialect: str) -> ColumnElement[bool]:
    """Log rows no group still has to handle. The deliveries have no index on the event id
    alone: SQLite reads their ids once for ``NOT IN`` (``NOT EXISTS`` would scan them for
    every row), PostgreSQL joins them for ``NOT EXISTS`` (an anti-join; its ``NOT IN`` is
    only hashed while the ids fit in memory)."""
    if dialect == "sqlite":
        return event_log.c.id.not_in(select(deliveries.c.event_id))
    return ~exists().where(deliveries.c.event_id == event_log.c.id)


def _handed_done() -> ColumnElement[bool]:
    """On SQLite, what else a log row must be to go: an event handed over is settled by every
    group of its topic."""
    settled_by_all = (
        select(func.min(groups.c.handed_through))
        .where(groups.c.topic == event_log.c.topic)
        .scalar_subquery()
    )
    return or_(~event_log.c.handed, func.coalesce(settled_by_all, _ROWID) >= _ROWID)


def _key(topic: str, group: str, event_id: str) -> ColumnElement[bool]:
    return and_(
        deliveries.c.topic == topic,
        deliveries.c.group_name == group,
        deliveries.c.event_id == event_id,
    )


def _log_row(envelope: Envelope) -> dict[str, Any]:
    return {
        "id": envelope.id,
        "topic": envelope.topic,
        "type_name": envelope.type_name,
        "time": envelope.time,
        "payload": envelope.payload,
        "traceparent": envelope.traceparent or None,
    }


def _claiming(group: ColumnElement[bool], consumer: str) -> tuple[Any, Any]:
    """A channel's two claim statements, built once: SQLAlchemy then finds their compiled
    form by a cache key it keeps on the statement, instead of building and hashing a new
    statement per claim (a good part of a claim's CPU)."""
    now = bindparam("claim_now", type_=UTCDateTime())
    due = (
        select(deliveries.c.event_id)
        .where(
            group,
            deliveries.c.available_at <= now,
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
        )
        .order_by(deliveries.c.available_at)
        .limit(bindparam("claim_limit", type_=Integer()))
        .with_for_update(skip_locked=True)
        # Materialised, so PostgreSQL runs it once: a subquery the plan runs again could
        # skip the rows it locked the first time and lease more than the limit.
        .cte("claim_due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    lease = (
        update(deliveries)
        .where(group, deliveries.c.event_id.in_(select(due.c.event_id)))
        .values(
            owner=consumer,
            lease_until=bindparam("claim_until", type_=UTCDateTime()),
            attempts=deliveries.c.attempts + 1,
        )
        .returning(deliveries.c.event_id, deliveries.c.attempts, deliveries.c.available_at)
    )
    read = select(event_log).where(event_log.c.id.in_(bindparam("claim_ids", expanding=True)))
    return lease, read


_STORED_TIME = stored_by_sqlalchemy(event_log.c.time)
_STORED_AVAILABLE = stored_by_sqlalchemy(deliveries.c.available_at)
_LOG_MARKS = "(?, ?, ?, ?, ?, ?, ?)"
# The tables' names come from the schema and every value is bound (hence the noqa).
_ADD_SQL = (
    f"INSERT INTO {event_log.name} "  # noqa: S608
    "(id, topic, type_name, time, payload, traceparent, handed) "
    "VALUES {rows} ON CONFLICT (id) DO NOTHING RETURNING id, rowid"
)
_DELIVER_SQL = (
    f"INSERT INTO {deliveries.name} "  # noqa: S608
    "(topic, group_name, event_id, attempts, available_at) "
    f"SELECT g.topic, g.group_name, l.id, 0, l.time FROM {groups.name} AS g "
    f"JOIN {event_log.name} AS l ON l.topic = g.topic WHERE l.id IN ({{ids}})"
)
_DELIVER_OTHERS_SQL = _DELIVER_SQL + " AND g.group_name NOT IN ({names})"
"""The deliveries of new events to the groups not in ``names`` (those it was handed to)."""
_GROUPS_OF_TOPIC_SQL = f"SELECT group_name FROM {groups.name} WHERE topic = ?"  # noqa: S608


_DELETE_SQL = (
    f"DELETE FROM {deliveries.name} "  # noqa: S608
    "WHERE topic = ? AND group_name = ? AND event_id IN ({ids})"
)


_REDELIVER_SQL = (
    f"INSERT INTO {deliveries.name} "  # noqa: S608
    "(topic, group_name, event_id, attempts, available_at) VALUES {rows} "
    "ON CONFLICT DO NOTHING"
)
"""Delivery rows for events handed over and not settled (their handover an attempt)."""
_HANDED_THROUGH_SQL = (
    f"UPDATE {groups.name} SET handed_through = ? "  # noqa: S608
    "WHERE topic = ? AND group_name = ? AND (handed_through IS NULL OR handed_through < ?)"
)


@dataclass(frozen=True)
class _Settling:
    """What one acknowledgement transaction of a channel writes (see the module)."""

    topic: str
    group: str
    deleted: list[str]
    """Claimed events' ids: their delivery rows go."""
    given_rows: list[str]
    """Handed-over events' ids that get a delivery row again (their settlement failed)."""
    through: int | None
    """The group's new ``handed_through``; None: unchanged."""


def _settle_on_driver(settling: _Settling, db: sqlite3.Connection) -> None:
    """What ``settling`` says, in the caller's transaction on SQLite's driver."""
    topic, group = settling.topic, settling.group
    for part in in_driver_batches(settling.deleted):
        db.execute(_DELETE_SQL.format(ids=parameter_marks(len(part))), [topic, group, *part])
    if settling.given_rows:
        _give_rows_on_driver(db, topic, group, settling.given_rows)
    if settling.through is not None:
        db.execute(_HANDED_THROUGH_SQL, [settling.through, topic, group, settling.through])


async def _settle_in_session(session: AsyncSession, settling: _Settling) -> None:
    """:func:`_settle_on_driver` through SQLAlchemy (a channel without the driver)."""
    topic, group = settling.topic, settling.group
    if settling.deleted:
        await session.execute(
            delete(deliveries).where(
                deliveries.c.topic == topic,
                deliveries.c.group_name == group,
                deliveries.c.event_id.in_(settling.deleted),
            )
        )
    if settling.given_rows:  # handed over: SQLite only
        now = datetime.now(UTC)
        rows = [
            {
                "topic": topic,
                "group_name": group,
                "event_id": event_id,
                "attempts": 1,
                "available_at": now,
            }
            for event_id in settling.given_rows
        ]
        await session.execute(sqlite.insert(deliveries).on_conflict_do_nothing(), rows)
    if settling.through is not None:
        await session.execute(
            update(groups)
            .where(
                groups.c.topic == topic,
                groups.c.group_name == group,
                or_(
                    groups.c.handed_through.is_(None),
                    groups.c.handed_through < settling.through,
                ),
            )
            .values(handed_through=settling.through)
        )


def _give_rows_on_driver(db: sqlite3.Connection, topic: str, group: str, ids: list[str]) -> None:
    """Delivery rows, due now, for the handed-over events ``ids`` (their handover counted
    as an attempt)."""
    now = _STORED_AVAILABLE(datetime.now(UTC))
    for part in in_driver_batches(ids):
        values = [value for event_id in part for value in (topic, group, event_id, 1, now)]
        db.execute(_REDELIVER_SQL.format(rows=parameter_marks(len(part), _ROW_MARKS)), values)


_ROW_MARKS = "(?, ?, ?, ?, ?)"


def _groups_besides(db: sqlite3.Connection, topic: str, names: list[str]) -> bool:
    """Whether ``topic`` has a group not in ``names``: one lookup of the groups a commit
    would otherwise join against each of its events, to find none in the end."""
    others = db.execute(_GROUPS_OF_TOPIC_SQL, (topic,)).fetchall()
    return any(group not in names for (group,) in others)


def _deliver_on_driver(db: sqlite3.Connection, ids: list[str], handed_to: list[str]) -> None:
    """The deliveries of the new events ``ids`` to the groups of their topic, but for the
    groups ``handed_to`` (see the module)."""
    marks = parameter_marks(len(ids))
    if not handed_to:
        db.execute(_DELIVER_SQL.format(ids=marks), ids)
        return
    names = parameter_marks(len(handed_to))
    db.execute(_DELIVER_OTHERS_SQL.format(ids=marks, names=names), [*ids, *handed_to])


def _driver_log_row(envelope: Envelope, handed: bool) -> tuple[Any, ...]:
    return (
        envelope.id,
        envelope.topic,
        envelope.type_name,
        _STORED_TIME(envelope.time),
        envelope.payload,
        envelope.traceparent or None,
        handed,
    )


@functools.cache
def _writing(dialect: str) -> tuple[Any, Any]:
    """The log's two write statements, built once per dialect (their compiled forms are
    then found by the cache key kept on them): the events, returning the ids that were
    new, and a delivery per new id and group of its topic."""
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    add = (
        insert_into(event_log)
        .on_conflict_do_nothing(index_elements=[event_log.c.id])
        .returning(event_log.c.id)
    )
    deliver = _fan_out(
        select(
            groups.c.topic,
            groups.c.group_name,
            event_log.c.id,
            literal(0, Integer),
            event_log.c.time,
        )
        .join(event_log, event_log.c.topic == groups.c.topic)
        .where(event_log.c.id.in_(bindparam("fresh_ids", expanding=True)))
    )
    return add, deliver


def _fan_out(rows: Any) -> Any:
    """Insert one delivery row per selected (topic, group, event id, attempts, time)."""
    return insert(deliveries).from_select(
        ["topic", "group_name", "event_id", "attempts", "available_at"], rows
    )


def _claim(row: Any, attempts: int, message: Message | None = None) -> Claim:
    """The claim of a log row, or of an envelope handed over (its first attempt, with its
    message when the publisher gave it up); the receipt is the event id."""
    delivery = Delivery(  # by position: one is made per event handed over
        row.id,
        row.topic,
        row.type_name,
        row.time,
        bytes(row.payload),
        attempts,
        row.traceparent or "",
        message,
    )
    return Claim(delivery, row.id)
