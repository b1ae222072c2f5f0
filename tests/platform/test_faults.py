"""The fault suite: the platform profile under a bounded load of paid calls, with faults
injected in turn, keeps money and events right.

Real processes: a fresh PostgreSQL database, a Redis server of the test's own (it is
restarted, and this machine's Redis keeps nothing on disk, so the restart loses its data),
every service the public API needs (`SERVICES`) as its own `m3o run <service>`, and three
gateway workers on their own ports. The test is the load balancer: its workers spread paid
helloworld calls over the gateways it routes to. One platform start serves every fault:

1. **A gateway worker killed (SIGKILL)** mid-load, while it holds reservations (helloworld
   is frozen with SIGSTOP until it does); the load moves to the other two, and a survivor
   recovers the dead worker's holds (its lease is removed: the 30 s it would take to expire
   is all that is skipped). Customer P1: charged == price x the monthly counter == the
   history's calls <= the 200s seen (calls the dead worker answered but had not committed
   are answered free, by design: the gateway README's "Charged <= answered 2xx").
2. **The usage and balance processes killed (SIGKILL)** mid-load and started again on the
   same settings while the load goes on. Their consumers' claimed entries are taken over by
   the new processes (the test makes them idle past the 60 s lease, as a dead consumer's
   entries become). Customer P2: every 200 charged, counted and in the history exactly
   once; customer S, whose small balance runs out during the load, got exactly the 200s
   their balance pays for.
3. **Redis restarted empty** mid-load. What the README's "When Redis loses its data"
   promises, asserted exactly: no recorded debit given back (P3's charges never fall below
   what the ledger had recorded before the loss), nothing charged beyond the 200s answered,
   nobody admitted beyond their balance (S, out of credit before, gets no 200 after), and
   from then on the books agree call for call (a last load on P3 moves charged, the monthly
   counter, the history and the 200s by exactly the same amount).

Afterwards `m3o balance check` is clean. The figures are printed (`-s`) and in the README.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from support.paid_calls import (
    COUNTERS_PREFIX,
    HOLDS,
    Books,
    paid_helloworld_customer,
)
from support.platform import (
    CALL_PATH,
    SERVICES,
    Api,
    Customer,
    Process,
    admin_api,
    assert_balances_check,
    assert_no_logged_errors,
    free_port,
    listening,
    migrate,
    new_customer,
    platform_env,
    ready,
    start,
    stop,
    until,
)
from support.throwaway_redis import RedisServer, redis_server

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "faults-admin-password"
PRICE = 7
FUNDS = 1_000_000
SMALL_CALLS = 30
SMALL_FUNDS = PRICE * SMALL_CALLS + 3
"""Customer S's balance: 30 calls and 3 units over, less than one more call."""
IN_FLIGHT = 18
GATEWAYS = 3
BEFORE_FAULT = 90
"""Answers of a phase's load before its fault is injected."""
AFTER_FAULT = 90
"""Answers of a phase's load after its fault is over (the load goes on meanwhile)."""
LAST_LOAD = 60
"""Calls of P3 once Redis is back and the books have settled."""
STARTUP = 120
"""Seconds a process may take to start (eleven start on a shared 2-core machine)."""
LEASE_PREFIX = COUNTERS_PREFIX + "v1:holds-lease:"
IDLE_PAST_LEASE_MS = 600_000


@pytest.fixture
def throwaway_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@dataclass
class Load:
    """Paid calls spread over the gateways the test routes to (its load balancer)."""

    client: httpx.AsyncClient
    urls: list[str]
    routed: list[int]
    statuses: dict[str, list[int]] = field(default_factory=dict)
    """Per customer, the status of each call (0: no answer, the connection broke)."""

    sent: dict[str, list[float]] = field(default_factory=dict)
    """Per customer, when each call was sent (``time.monotonic()``)."""

    @property
    def answered(self) -> int:
        return sum(len(statuses) for statuses in self.statuses.values())

    async def run(self, customers: dict[str, Customer], stop_: asyncio.Event) -> None:
        """``IN_FLIGHT`` workers calling in turn for each of ``customers``, each call to the
        next routed gateway, until ``stop_`` is set."""
        for name in customers:
            self.statuses.setdefault(name, [])
            self.sent.setdefault(name, [])
        turns = itertools.count()
        names = list(customers)

        async def worker() -> None:
            while not stop_.is_set():
                turn = next(turns)
                name = names[turn % len(names)]
                gateway = self.routed[turn % len(self.routed)]
                sent = time.monotonic()
                try:
                    response = await self.client.post(
                        f"{self.urls[gateway]}{CALL_PATH}",
                        json={"name": f"c{turn}"},
                        headers={"Authorization": f"Bearer {customers[name].key}"},
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                self.statuses[name].append(status)
                self.sent[name].append(sent)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))

    def answered_200_since(self, name: str, moment: float) -> int:
        """The customer's calls sent after ``moment`` that were answered 200."""
        pairs = zip(self.statuses[name], self.sent[name], strict=True)
        return sum(1 for status, sent in pairs if status == 200 and sent > moment)

    async def until_answered(self, more: int, what: str) -> None:
        target = self.answered + more
        await until(lambda: self.answered >= target, what, seconds=120)


@dataclass
class Figures:
    calls: int = 0
    faults: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)


@dataclass
class Platform:
    """The running platform and what the faults need of it."""

    env: dict[str, str]
    database: str
    sockets: Path
    logs: Path
    redis_server: RedisServer
    store: redis.Redis
    client: httpx.AsyncClient
    urls: list[str]
    services: dict[str, Process]
    restarted: list[Process]
    killed: list[Process]
    api: Api
    load: Load
    figures: Figures

    def books(self, customer: Customer) -> Books:
        return Books(self.api, self.store, customer.id, price=PRICE, funds=customer.funds)

    async def balance(self, customer: Customer) -> int:
        current = await self.api.as_admin("/balance/current", {"customer_id": customer.id})
        return int(current.get("current_balance", 0))


@pytest.mark.timeout(420)
async def test_the_platform_keeps_money_and_events_right_through_faults(
    database: str, workdir: Path, throwaway_redis: RedisServer, tmp_path: Path
) -> None:
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = platform_env(
        database,
        throwaway_redis.url(),
        sockets,
        "faults-test-service-secret",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__LOG_LEVEL="warning",
        M3O_V1__RATE_LIMITS__FREE="100000",
        M3O_V1__KEY_PEPPER="faults-test-key-pepper",
        M3O_BALANCE__FLUSH_INTERVAL="1s",
    )
    migrate(env)
    store = redis.Redis.from_url(throwaway_redis.url())
    figures = Figures()
    services = {name: start(name, env, logs) for name in SERVICES}
    restarted: list[Process] = []
    killed: list[Process] = []
    ports = [free_port() for _ in range(GATEWAYS)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def gateway(n: int) -> Process:
        return start(f"gateway-{n}", {**env, "M3O_SERVER__PORT": str(ports[n])}, logs, "gateway")

    # The victim starts last, so its lease (and its holds' instance) is the new one.
    gateways = [gateway(1), gateway(2)]
    victim: Process | None = None
    limits = httpx.Limits(
        max_connections=2 * IN_FLIGHT, max_keepalive_connections=IN_FLIGHT, keepalive_expiry=2.0
    )
    try:
        await listening(list(services.values()), sockets, STARTUP)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            for n, process in zip((1, 2), gateways, strict=True):
                await ready(client, process, urls[n], STARTUP)
            await until(lambda: len(leases(store)) == 2, "two gateways' leases", STARTUP)
            survivors = leases(store)
            victim = gateway(0)
            victim_instance = await lease_of(client, store, victim, urls[0], survivors)

            api = await admin_api(client, urls[1], ADMIN_PASSWORD, STARTUP)
            p1 = await paid_helloworld_customer(
                api,
                client,
                urls[1],
                price=PRICE,
                funds=FUNDS,
                other_gateways=[urls[0], urls[2]],
            )
            p2, p3 = [await new_customer(api, name, FUNDS) for name in ("p2", "p3")]
            small = await new_customer(api, "small", SMALL_FUNDS)
            platform = Platform(
                env=env,
                database=database,
                sockets=sockets,
                logs=logs,
                redis_server=throwaway_redis,
                store=store,
                client=client,
                urls=urls,
                services=services,
                restarted=restarted,
                killed=killed,
                api=api,
                load=Load(client, urls, routed=[0, 1, 2]),
                figures=figures,
            )
            try:
                await a_gateway_worker_killed(platform, p1, victim, victim_instance)
                await the_consumers_killed(platform, p2, small)
                await redis_restarted_empty(platform, p3, small)
            finally:
                store = platform.store

        assert_balances_check(env, workdir)
    finally:
        problems = stop_all(gateways, restarted, list(services.values()), victim)
        if victim is not None:
            killed.append(victim)
        store.close()
    assert not problems, "\n".join(problems)
    report = (
        f"fault suite: {figures.calls} calls made, {len(figures.faults)} faults injected "
        f"({'; '.join(figures.faults)}), differences found: 0\n  "
        + "\n  ".join(figures.differences)
    )
    print(report)  # noqa: T201 - the figures the README quotes
    assert_no_logged_errors([*gateways, *restarted, *services.values(), *killed])


async def a_gateway_worker_killed(
    platform: Platform, p1: Customer, victim: Process, victim_instance: str
) -> None:
    """Fault 1: P1's books agree, and never count more than the 200s answered."""
    load, store = platform.load, platform.store
    upstream = platform.services["helloworld"]
    left = await fault(
        load, {"p1": p1}, kill_gateway(load, store, victim, victim_instance, upstream)
    )
    platform.figures.faults.append(f"gateway worker SIGKILLed holding {left} reservations")
    # The survivors recover its holds once its lease is gone (as if expired).
    store.delete(LEASE_PREFIX + victim_instance)
    books = platform.books(p1)
    await settled(store, books, "P1's books after the gateway kill")
    charged, monthly, history = await books.read()
    served = load.statuses["p1"].count(200)
    platform.figures.differences.append(
        f"P1: {served} answered 200, {monthly} charged and counted "
        f"({served - monthly} answered free by the killed worker, by design)"
    )
    assert charged == PRICE * monthly == PRICE * history, (charged, monthly, history)
    assert 0 < monthly <= served, (monthly, served)
    assert left > 0, "the kill left no reservation: the test proved nothing"
    assert set(load.statuses["p1"]) <= {0, 200}, Counter(load.statuses["p1"])


async def the_consumers_killed(platform: Platform, p2: Customer, small: Customer) -> None:
    """Fault 2: every 200 of P2 charged, counted and in the history once; S gets exactly
    the 200s their balance pays for."""
    load, store = platform.load, platform.store

    async def kill_consumers() -> None:
        for name in ("usage", "balance"):
            process = platform.services.pop(name)
            platform.killed.append(process)
            process.popen.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(process.popen.wait, 10) == -signal.SIGKILL
            process.stream.close()
            expire_claims(store, process.popen.pid)
            (platform.sockets / f"{name}.sock").unlink(missing_ok=True)
        for name in ("usage", "balance"):
            platform.restarted.append(start(f"{name}-again", platform.env, platform.logs, name))
        for name in ("usage", "balance"):
            socket = platform.sockets / f"{name}.sock"
            await until(socket.exists, f"{name} started again", STARTUP)

    await fault(load, {"p2": p2, "small": small}, kill_consumers())
    platform.figures.faults.append("usage and balance processes SIGKILLed and restarted")
    served = load.statuses["p2"].count(200)
    await settled(store, platform.books(p2), "P2's books after the consumers' kill", served)
    await settled(store, platform.books(small), "S's books after the kill", SMALL_CALLS)
    assert load.statuses["p2"] == [200] * served, Counter(load.statuses["p2"])
    assert load.statuses["small"].count(200) == SMALL_CALLS
    assert set(load.statuses["small"]) == {200, 403}, Counter(load.statuses["small"])
    assert await platform.balance(small) == SMALL_FUNDS - PRICE * SMALL_CALLS
    platform.figures.differences.append(
        f"P2: {served} answered 200, charged, counted, in the history: 0 differences"
    )
    platform.figures.differences.append(
        f"S: {SMALL_CALLS} answered 200 of {len(load.statuses['small'])} calls, "
        "the rest refused for credit: 0 admitted beyond the balance"
    )


async def redis_restarted_empty(platform: Platform, p3: Customer, small: Customer) -> None:
    """Fault 3: what README's "When Redis loses its data" promises."""
    load, api = platform.load, platform.api
    small_before = len(load.statuses["small"])
    recorded: list[int] = []
    restarted_at: list[float] = []
    groups: set[tuple[bytes, bytes]] = set()

    async def restart_redis() -> None:
        await until(lambda: ledger_debits(api, p3.id, recorded), "P3's debits flushed", 30)
        groups.update(consumer_groups(platform.store))
        await asyncio.to_thread(platform.redis_server.restart)
        restarted_at.append(time.monotonic())

    await fault(load, {"p3": p3, "small": small}, restart_redis())
    platform.figures.faults.append("Redis restarted, empty")
    platform.store.close()
    store = platform.store = redis.Redis.from_url(platform.redis_server.url())
    await until(lambda: quiet(store, api, p3.id), "P3's debits all in the ledger", 60)
    charged = p3.funds - await platform.balance(p3)
    served = load.statuses["p3"].count(200)
    # Calls sent once Redis was back and answered 200 were admitted after the loss.
    after = load.answered_200_since("p3", restarted_at[0])
    assert recorded[0] + PRICE * after <= charged <= PRICE * served, (
        recorded,
        after,
        charged,
        served,
    )
    assert set(load.statuses["p3"]) <= {200, 503}, Counter(load.statuses["p3"])
    after_loss = load.statuses["small"][small_before:]
    assert 200 not in after_loss, Counter(after_loss)
    assert set(after_loss) <= {403, 503}, Counter(after_loss)
    assert await platform.balance(small) == SMALL_FUNDS - PRICE * SMALL_CALLS
    platform.figures.differences.append(
        f"P3: {recorded[0]} units recorded before the loss, {charged} charged in all for "
        f"{served} answers 200 ({after} sent after the restart, all charged; the unflushed "
        "debits and the calls in flight answered free, by design); S: 0 answered 200 "
        "after the loss, balance unchanged"
    )
    await the_books_agree_from_then_on(platform, p3, groups)
    platform.figures.calls = load.answered + platform.figures.calls


async def the_books_agree_from_then_on(
    platform: Platform, p3: Customer, groups: set[tuple[bytes, bytes]]
) -> None:
    """Once every event is relayed and consumed (``groups`` created again), a last load
    on P3 moves charged, the monthly counter and the history by exactly its 200s."""
    store, books = platform.store, platform.books(p3)
    gateways = platform.urls[1:]
    await until(
        lambda: drained(store, platform.database, platform.client, gateways, groups),
        "every event relayed and consumed",
        60,
    )
    before = await books.read()
    last = Load(platform.client, platform.urls, routed=[1, 2])
    stop_last = asyncio.Event()
    running = asyncio.create_task(last.run({"p3": p3}, stop_last))
    await last.until_answered(LAST_LOAD, "the last load")
    stop_last.set()
    await running
    answered = last.statuses["p3"].count(200)
    assert last.statuses["p3"] == [200] * answered
    moved: list[tuple[int, int, int]] = []

    async def moved_together() -> bool:
        now = await books.read()
        moved[:] = [now]
        return store.hlen(HOLDS) == 0 and all(
            after - then == weight * answered
            for after, then, weight in zip(now, before, (PRICE, 1, 1), strict=True)
        )

    try:
        await until(moved_together, "P3's books moving with the last load", 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {before} -> {moved}, {answered} answered") from None
    platform.figures.differences.append(
        f"P3 after the loss: {answered} answered 200, charged, counted, in the "
        "history: 0 differences"
    )
    platform.figures.calls += last.answered


def stop_all(
    gateways: list[Process], restarted: list[Process], services: list[Process], victim: Any
) -> list[str]:
    """Stop every process still running (``victim``, if started, is killed); the problems
    of those that did not exit cleanly."""
    if victim is not None and victim.popen.poll() is None:
        victim.popen.kill()
    for process in services:
        if process.popen.poll() is None:  # a failure may have left helloworld frozen
            process.popen.send_signal(signal.SIGCONT)
    problems = stop(gateways) + stop(restarted) + stop(list(reversed(services)))
    if victim is not None:
        victim.popen.wait()
        victim.stream.close()
    return problems


async def lease_of(
    client: httpx.AsyncClient, store: redis.Redis, gateway: Process, url: str, others: set[str]
) -> str:
    """The instance of ``gateway``, started after the gateways holding ``others``: the
    lease that appears once it is ready."""
    await ready(client, gateway, url, STARTUP)
    await until(lambda: len(leases(store)) == GATEWAYS, "its lease", STARTUP)
    (instance,) = leases(store) - others
    return instance


def leases(store: redis.Redis) -> set[str]:
    """The instances of the gateways holding a lease."""
    prefix = LEASE_PREFIX.encode()
    return {key[len(prefix) :].decode() for key in store.scan_iter(match=prefix + b"*")}


async def fault(load: Load, customers: dict[str, Customer], inject: object) -> object:
    """Run ``load`` for ``customers``; after ``BEFORE_FAULT`` answers await ``inject`` (a
    coroutine), then let the load go on for ``AFTER_FAULT`` answers and stop it. What
    ``inject`` returned."""
    stop_ = asyncio.Event()
    running = asyncio.create_task(load.run(customers, stop_))
    try:
        await load.until_answered(BEFORE_FAULT, "answers before the fault")
        result = await inject  # type: ignore[misc]
        await load.until_answered(AFTER_FAULT, "answers after the fault")
    finally:
        stop_.set()
        await running
    return result


async def kill_gateway(
    load: Load, store: redis.Redis, victim: Process, instance: str, upstream: Process
) -> int:
    """With the upstream frozen (admitted calls keep their reservations), SIGKILL the victim
    once it holds some, and route the load away from it; how many holds it left."""
    upstream.popen.send_signal(signal.SIGSTOP)
    try:
        prefix = f"{instance}.".encode()

        def held() -> int:
            return sum(1 for hold in store.hkeys(HOLDS) if hold.startswith(prefix))

        await until(lambda: held() > 0, "the victim holding reservations", 60)
        victim.popen.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(victim.popen.wait, 10) == -signal.SIGKILL
        load.routed = [1, 2]
        left = held()
    finally:
        upstream.popen.send_signal(signal.SIGCONT)
    return left


def expire_claims(store: redis.Redis, pid: int) -> None:
    """Make the stream entries the consumers of process ``pid`` had claimed idle past any
    lease, as a dead consumer's become, so the next consumer takes them over at once."""
    for stream in store.scan_iter(match=b"m3o:events:*", _type="stream"):
        for group in store.xinfo_groups(stream):
            for consumer in store.xinfo_consumers(stream, group["name"]):
                if f"-{pid}-" not in consumer["name"].decode():
                    continue
                pending = store.xpending_range(
                    stream, group["name"], "-", "+", 10_000, consumername=consumer["name"]
                )
                ids = [entry["message_id"] for entry in pending]
                if ids:
                    store.xclaim(
                        stream,
                        group["name"],
                        consumer["name"],
                        0,
                        ids,
                        idle=IDLE_PAST_LEASE_MS,
                    )


async def settled(store: redis.Redis, books: Books, what: str, calls: int = 0) -> None:
    """Wait until no hold is left and ``books`` agree (on ``calls`` if given)."""

    async def agree() -> bool:
        if store.hlen(HOLDS) or not await books.agree():
            return False
        return not calls or (books.last is not None and books.last[1] == calls)

    try:
        await until(agree, what, 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: last read {books.last}") from None


async def ledger_debits(api: Api, customer_id: str, into: list[int]) -> bool:
    """Whether the ledger holds some of the customer's request debits (their sum, as a
    positive number, put in ``into``)."""
    listed = await api.as_admin(
        "/balance/listAdjustments", {"customer_id": customer_id, "limit": 1000}
    )
    debits = -sum(
        int(entry.get("delta", 0))
        for entry in listed.get("adjustments", [])
        if entry.get("reference") == "API usage"
    )
    into[:] = [debits]
    return debits > 0


async def quiet(store: redis.Redis, api: Api, customer_id: str) -> bool:
    """No hold left, and the ledger holds every debit of the customer (balance == hot)."""
    listed = await api.as_admin(
        "/balance/listAdjustments", {"customer_id": customer_id, "limit": 1000}
    )
    ledger = sum(int(entry.get("delta", 0)) for entry in listed.get("adjustments", []))
    current = await api.as_admin("/balance/current", {"customer_id": customer_id})
    return store.hlen(HOLDS) == 0 and ledger == int(current.get("current_balance", 0))


async def drained(
    store: redis.Redis,
    database: str,
    client: httpx.AsyncClient,
    gateways: list[str],
    groups: set[tuple[bytes, bytes]],
) -> bool:
    """No request event waits in a gateway's memory or in the outbox, and each of
    ``groups`` (stream, group) whose stream exists has been created again by its consumer
    and has read and acknowledged every entry."""
    for url in gateways:
        metrics = (await client.get(f"{url}/metrics")).text
        if "m3o_v1_request_events_buffered 0.0" not in metrics:
            return False
    engine = create_async_engine(database)
    try:
        async with engine.connect() as conn:
            outbox = text("SELECT count(*) FROM runtime_event_outbox")
            waiting = (await conn.execute(outbox)).scalar()
    finally:
        await engine.dispose()
    if waiting:
        return False
    for stream in {stream for stream, _ in groups}:
        if not store.exists(stream):
            continue  # nothing published on it since the loss
        found = {info["name"]: info for info in store.xinfo_groups(stream)}
        for _, group in (pair for pair in groups if pair[0] == stream):
            info = found.get(group)
            if info is None or info["pending"] or info.get("lag") != 0:
                return False
    return True


def consumer_groups(store: redis.Redis) -> set[tuple[bytes, bytes]]:
    """Every (stream, group) of the event streams."""
    return {
        (stream, info["name"])
        for stream in store.scan_iter(match=b"m3o:events:*", _type="stream")
        for info in store.xinfo_groups(stream)
    }
