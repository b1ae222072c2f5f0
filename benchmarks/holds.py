"""What holds cost the Redis counter store per paid call, against admission without them.

A paid call with holds is: its admission (in an ``admit_many`` with the calls admitted
alongside it, the hold written in the same script run), its commit before the answer
(``commit_many``), and its settle once its event is published (``settle_many``, one per
published batch). Measured in the same run, on the same client, 32 calls in flight:

- ``admit_many`` of 32 without holds (the code before holds: the baseline);
- the same with holds, each call then committed on its own (a ``commit_many`` of one, as
  the gateway commits now), the 32 settled together;
- the same with the 32 commits in one ``commit_many`` (commits gathered per loop turn).

Each line prints calls per second and its ratio to the baseline.

    uv run python benchmarks/holds.py [--redis redis://127.0.0.1:6379/1] [--seconds 2]

The keys live under a prefix of their own and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from admission import IN_FLIGHT, priced_call, rate  # type: ignore[import-not-found]

from m3o.runtime.counters.admission import AdmissionRequest, Hold
from m3o.runtime.counters.redis import RedisCounterStore

BOOK = "v1:holds"
NOTE = "x" * 400
"""About the size of a request event's note."""


async def main(url: str, seconds: float) -> None:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(
        url, max_connections=2 * IN_FLIGHT, socket_timeout=5, socket_connect_timeout=5
    )
    store = RedisCounterStore(client, prefix, timeout=5, max_in_flight=2 * IN_FLIGHT)
    await store.set_counter_if_absent("bal", 10**15)
    plain = [priced_call(project) for project in range(IN_FLIGHT)]
    numbers = itertools.count()

    def with_holds() -> list[AdmissionRequest]:
        return [
            dataclasses.replace(request, hold=Hold(BOOK, f"bench.{next(numbers)}"))
            for request in plain
        ]

    async def without() -> None:
        await store.admit_many(plain)

    async def commits_one_by_one() -> None:
        requests = with_holds()
        await store.admit_many(requests)
        holds = [request.hold for request in requests if request.hold is not None]
        await asyncio.gather(*(store.commit_many([(hold, NOTE)]) for hold in holds))
        await store.settle_many(holds)

    async def commits_together() -> None:
        requests = with_holds()
        await store.admit_many(requests)
        holds = [request.hold for request in requests if request.hold is not None]
        await store.commit_many([(hold, NOTE) for hold in holds])
        await store.settle_many(holds)

    cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("admit_many of 32, no holds (baseline)", without),
        ("with holds, 32 commits of one", commits_one_by_one),
        ("with holds, one commit_many of 32", commits_together),
    ]
    try:
        await rate(without, workers=1, per_call=IN_FLIGHT, seconds=0.3)  # warm up
        baseline = 0.0
        for label, operation in cases:
            per_second = await rate(operation, workers=1, per_call=IN_FLIGHT, seconds=seconds)
            baseline = baseline or per_second
            print(
                f"  {label:<40} {per_second:>10,.0f} calls/s"
                f"  ratio to baseline = {per_second / baseline:.2f}"
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
