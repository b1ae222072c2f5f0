"""Admission stays exact under concurrency, in one process and across OS processes.

Two projects bill one customer: each has a small rate limit and a small fair-use quota,
and they share a small balance. Every call is the same free call, so whatever the
interleaving, the serial order decides the totals: per project the first ``RATE_LIMIT``
calls reach the store's later checks (``FREE_QUOTA`` free, then the shared balance pays 1
per call until it is gone, then insufficient credit), the rest are rate limited.
Hundreds of calls race through ``admit`` and ``admit_many`` (asyncio.gather), and through
several processes each with its own store (Redis, PostgreSQL, SQLite); never one call more
than allowed is admitted, and the counters and the balance end consistent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP, AdmissionDecision, AdmissionRequest, Verdict
from m3o.runtime.counters.redis import RedisCounterStore
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import sqlite_url
from support.backends import DATABASE_BACKENDS, POSTGRES_URL, REDIS_URL, drop_engine, make_engine

PROJECTS = ("a", "b")
RATE_LIMIT = 40
FREE_QUOTA = 15
BALANCE = 20
CALLS_PER_PROJECT = 200
PREFIX = "test:"
WINDOW_SECONDS = 300
"""Longer than any run: the rate window never rolls over during a test."""


def request_fields(project: str) -> dict[str, Any]:
    """The call of ``project``, as plain values a worker process can rebuild."""
    return {
        "rate_key": f"rate:{project}",
        "rate_limit": RATE_LIMIT,
        "cap": NO_CAP,
        "cap_key": f"ep:{project}",
        "price": 0,
        "free_key": f"free:{project}",
        "free_quota": FREE_QUOTA,
        "endpoint_key": f"ep:{project}",
        "endpoint_quota": 0,
        "total_key": f"total:{project}",
        "balance_key": "bal",
        "debited_key": "debited",
    }


def request_of(project: str) -> AdmissionRequest:
    return AdmissionRequest(
        **request_fields(project),
        monthly_ttl=timedelta(days=40),
        rate_window=timedelta(seconds=WINDOW_SECONDS),
    )


def expected_verdicts(calls: int) -> Counter[str]:
    """What ``calls`` calls (split evenly between the projects) must come to."""
    reaching = len(PROJECTS) * min(RATE_LIMIT, calls // len(PROJECTS))
    free = len(PROJECTS) * FREE_QUOTA
    paid = min(BALANCE, reaching - free)
    return Counter(
        {
            Verdict.ADMITTED.value: free + paid,
            Verdict.INSUFFICIENT_CREDIT.value: reaching - free - paid,
            Verdict.RATE_LIMITED.value: calls - reaching,
        }
    )


async def assert_final_counters(store: CounterStore, released: int = 0) -> None:
    """The counters after the scenario (``released`` paid calls given back)."""
    paid = BALANCE - released
    for project in PROJECTS:
        assert await store.get_many([f"rate:{project}", f"free:{project}"]) == [
            RATE_LIMIT,
            FREE_QUOTA,
        ]
    totals = await store.get_many([f"total:{p}" for p in PROJECTS])
    endpoints = await store.get_many([f"ep:{p}" for p in PROJECTS])
    assert sum(totals) == sum(endpoints) == len(PROJECTS) * FREE_QUOTA + paid
    assert totals == endpoints
    assert await store.get_many(["bal", "debited"]) == [BALANCE - paid, paid]


def calls_in_turn(count: int) -> list[AdmissionRequest]:
    return [request_of(PROJECTS[i % len(PROJECTS)]) for i in range(count)]


async def race(store: CounterStore, requests: list[AdmissionRequest]) -> list[AdmissionDecision]:
    """All ``requests`` at once: every other one alone, the rest in batches of three."""
    singles = requests[::2]
    batched = requests[1::2]
    batches = [batched[i : i + 3] for i in range(0, len(batched), 3)]
    alone, together = await asyncio.gather(
        asyncio.gather(*(store.admit(r) for r in singles)),
        asyncio.gather(*(store.admit_many(b) for b in batches)),
    )
    return [*alone, *(decision for batch in together for decision in batch)]


@dataclass
class Backend:
    name: str
    store: CounterStore
    worker_config: dict[str, Any]
    """How a worker process builds its own store on the same data."""


@pytest.fixture(params=[*DATABASE_BACKENDS, "redis"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, redis: aioredis.Redis
) -> AsyncIterator[Backend]:
    name = str(request.param)
    if name == "redis":
        store = RedisCounterStore(redis, prefix=PREFIX)
        yield Backend(name, store, {"redis": REDIS_URL})
        return
    engine, schema = await make_engine(name, tmp_path)
    config = (
        {"sql": sqlite_url(str(tmp_path / "m3o.db"))}
        if schema is None
        else {"sql": POSTGRES_URL, "schema": schema}
    )
    try:
        yield Backend(name, SqlCounterStore(engine), config)
    finally:
        await drop_engine(engine, schema)


# In one process


async def test_concurrent_admissions_admit_exactly_what_is_allowed(backend: Backend) -> None:
    store = backend.store
    await store.set_counter_if_absent("bal", BALANCE)
    calls = len(PROJECTS) * CALLS_PER_PROJECT
    decisions = await race(store, calls_in_turn(calls))
    assert Counter(d.verdict.value for d in decisions) == expected_verdicts(calls)
    assert Counter(d.charge for d in decisions if d.admitted) == {
        "free": len(PROJECTS) * FREE_QUOTA,
        "1": BALANCE,
    }
    await assert_final_counters(store)


async def test_concurrent_admissions_and_releases_keep_the_balance_consistent(
    backend: Backend,
) -> None:
    store = backend.store
    await store.set_counter_if_absent("bal", BALANCE)
    requests = calls_in_turn(len(PROJECTS) * CALLS_PER_PROJECT)
    released: list[int] = []

    async def call_and_maybe_release(index: int, request: AdmissionRequest) -> None:
        decision = await store.admit(request)
        if decision.admitted and index % 3 == 0:
            await store.release(request, decision)
            released.append(decision.debited)

    await asyncio.gather(*(call_and_maybe_release(i, r) for i, r in enumerate(requests)))
    balance, debited = await store.get_many(["bal", "debited"])
    assert balance >= 0
    assert balance + debited == BALANCE
    totals = await store.get_many([f"total:{p}" for p in PROJECTS])
    frees = await store.get_many([f"free:{p}" for p in PROJECTS])
    # Every admitted call not given back is counted once: free ones in the fair-use
    # counters, paid ones in the debits.
    assert sum(totals) == sum(frees) + debited
    assert all(0 <= free <= FREE_QUOTA for free in frees)
    assert await store.get_many([f"rate:{p}" for p in PROJECTS]) == [RATE_LIMIT] * 2
    assert released  # the scenario did give calls back


# Across processes

WORKER = """
import asyncio, json, sys
from collections import Counter
from datetime import timedelta

from m3o.runtime.counters.admission import AdmissionRequest
from m3o.runtime.counters.redis import redis_counter_store
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import create_engine


async def main(config):
    if "redis" in config:
        store = redis_counter_store(config["redis"], prefix=config["prefix"], timeout=30)
        engine = None
    else:
        engine = create_engine(config["sql"], schema=config.get("schema"))
        store = SqlCounterStore(engine)
    requests = [
        AdmissionRequest(
            **fields,
            monthly_ttl=timedelta(days=40),
            rate_window=timedelta(seconds=config["window"]),
        )
        for fields in config["requests"]
    ]
    await store.ping()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    singles = requests[::2]
    batched = requests[1::2]
    batches = [batched[i : i + 3] for i in range(0, len(batched), 3)]
    # At most 5 transactions at once a process on a database: still 20 racing for the same
    # rows across the workers, without the pool's 20 connections each (80 together took
    # most of PostgreSQL's 100 slots while other tests ran beside).
    turns = asyncio.Semaphore(5 if engine is not None else len(requests))

    async def taking_turns(call):
        async with turns:
            return await call

    results = await asyncio.gather(
        *(taking_turns(store.admit(r)) for r in singles),
        *(taking_turns(store.admit_many(b)) for b in batches),
    )
    verdicts = Counter()
    for result in results:
        for decision in result if isinstance(result, list) else [result]:
            verdicts[decision.verdict.value] += 1
    await store.close()
    if engine is not None:
        await engine.dispose()
    print(json.dumps(verdicts), flush=True)


asyncio.run(main(json.loads(sys.argv[1])))
"""

PROCESSES = 4


async def run_workers(config: dict[str, Any], calls_per_worker: int) -> Counter[str]:
    """Start the workers, let them all connect, start them at once, add up their verdicts."""
    per_project = calls_per_worker // len(PROJECTS)
    worker_config = {
        **config,
        "prefix": PREFIX,
        "window": WINDOW_SECONDS,
        "requests": [request_fields(p) for _ in range(per_project) for p in PROJECTS],
    }
    environment = {**os.environ, "PYTHONWARNINGS": "error"}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            json.dumps(worker_config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=environment,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert line == b"ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        total: Counter[str] = Counter()
        for worker in workers:
            output, _ = await asyncio.wait_for(worker.communicate(), timeout=60)
            assert worker.returncode == 0
            total.update(json.loads(output))
        return total
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()


async def test_admissions_from_several_processes_admit_exactly_what_is_allowed(
    backend: Backend,
) -> None:
    store = backend.store
    await store.set_counter_if_absent("bal", BALANCE)
    calls_per_worker = len(PROJECTS) * CALLS_PER_PROJECT // PROCESSES
    verdicts = await run_workers(backend.worker_config, calls_per_worker)
    assert verdicts == expected_verdicts(calls_per_worker * PROCESSES)
    await assert_final_counters(store)
