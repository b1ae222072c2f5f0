"""How many admissions per second the Redis counter store decides, one by one and batched.

Every admission takes the longest path (a priced call past the free quotas: rate hit, cap
read, quota reads, balance debit, debits raised, monthly counters counted). Measured in
the same run, on the same client: a plain Redis GET, the floor of any one round trip
through redis-py asyncio. Each line prints the rate and its ratio to the GET at the same
concurrency; ``admit_many`` counts admissions, not pipelines.

    uv run python benchmarks/admission.py [--redis redis://127.0.0.1:6379/1] [--seconds 2]

The keys live under a prefix of their own and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import redis.asyncio as aioredis

from m3o.runtime.counters.admission import AdmissionRequest
from m3o.runtime.counters.redis import RedisCounterStore

IN_FLIGHT = 32


def priced_call(project: int) -> AdmissionRequest:
    return AdmissionRequest(
        rate_key=f"rate:{project}",
        rate_limit=10**12,
        cap=10**12,
        cap_key=f"ep:{project}",
        price=1,
        free_key=f"free:{project}",
        free_quota=0,
        endpoint_key=f"ep:{project}",
        endpoint_quota=0,
        total_key=f"total:{project}",
        balance_key="bal",
        debited_key="debited",
        monthly_ttl=timedelta(days=40),
        rate_window=timedelta(hours=1),
    )


async def rate(
    operation: Callable[[], Awaitable[object]], *, workers: int, per_call: int, seconds: float
) -> float:
    """Operations (times ``per_call``) per second, ``workers`` of them in flight."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await operation()
            done += per_call

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / (time.perf_counter() - started)


async def main(url: str, seconds: float) -> None:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(
        url, max_connections=2 * IN_FLIGHT, socket_timeout=5, socket_connect_timeout=5
    )
    store = RedisCounterStore(client, prefix, timeout=5, max_in_flight=2 * IN_FLIGHT)
    await store.set_counter_if_absent("bal", 10**15)
    await client.set(prefix + "plain", "1")
    requests = [priced_call(project) for project in range(IN_FLIGHT)]
    batch_8 = requests[:8]

    async def get() -> None:
        await client.get(prefix + "plain")

    async def admit() -> None:
        await store.admit(requests[0])

    async def admit_many_8() -> None:
        await store.admit_many(batch_8)

    async def admit_many_32() -> None:
        await store.admit_many(requests)

    try:
        await rate(admit, workers=IN_FLIGHT, per_call=1, seconds=0.3)  # warm up
        for title, workers, cases in [
            (
                "sequential",
                1,
                [
                    ("admit", admit, 1, 1),
                    ("admit_many of 8", admit_many_8, 1, 8),
                    ("admit_many of 32", admit_many_32, 1, 32),
                ],
            ),
            (
                f"{IN_FLIGHT} in flight",
                IN_FLIGHT,
                [
                    ("admit", admit, IN_FLIGHT, 1),
                    ("admit_many of 8, 4 batches in flight", admit_many_8, 4, 8),
                    ("admit_many of 32, 1 batch in flight", admit_many_32, 1, 32),
                ],
            ),
        ]:
            floor = await rate(get, workers=workers, per_call=1, seconds=seconds)
            print(f"{title}:")
            print(f"  {'GET (baseline)':<40} {floor:>10,.0f}/s {1e6 / floor:>8.1f} µs")
            for label, operation, in_flight, per_call in cases:
                per_second = await rate(
                    operation, workers=in_flight, per_call=per_call, seconds=seconds
                )
                print(
                    f"  {label:<40} {per_second:>10,.0f}/s {1e6 / per_second:>8.1f} µs"
                    f"  admissions/GET = {per_second / floor:.2f}"
                )
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--seconds", type=float, default=2.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.redis, arguments.seconds))
