"""Events handled at once travel together: a batch goes when full or when its linger ends,
each handler returns once its batch was accepted and raises when it was not."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from m3o.services.mixpanel.batcher import Batcher, Pending


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.failure: Exception | None = None

    async def __call__(self, events: Sequence[dict[str, Any]]) -> None:
        self.batches.append(list(events))
        if self.failure is not None:
            raise self.failure


def _item(n: int) -> Pending:
    return Pending({"event": "e", "properties": {"$insert_id": str(n)}})


async def test_concurrent_events_are_sent_in_full_batches() -> None:
    sent = Recorder()
    batcher = Batcher(sent, size=100, linger=timedelta(milliseconds=50))
    async with asyncio.timeout(10):
        await asyncio.gather(*(batcher.submit(_item(n)) for n in range(250)))
    assert [len(b) for b in sent.batches] == [100, 100, 50]
    assert sorted(int(e["properties"]["$insert_id"]) for b in sent.batches for e in b) == list(
        range(250)
    )


async def test_a_lone_event_goes_when_the_linger_ends() -> None:
    sent = Recorder()
    batcher = Batcher(sent, size=100, linger=timedelta(milliseconds=20))
    async with asyncio.timeout(10):
        await batcher.submit(_item(1))
    assert len(sent.batches) == 1


async def test_every_handler_of_a_failed_batch_raises() -> None:
    sent = Recorder()
    sent.failure = RuntimeError("refused")
    batcher = Batcher(sent, size=3, linger=timedelta(seconds=30))
    async with asyncio.timeout(10):
        results = await asyncio.gather(
            *(batcher.submit(_item(n)) for n in range(3)), return_exceptions=True
        )
    assert [type(r) for r in results] == [RuntimeError] * 3


async def test_dropped_events_are_not_sent_and_their_handlers_return() -> None:
    sent = Recorder()

    async def odd_only(batch: Sequence[Pending]) -> Sequence[Pending]:
        return [p for p in batch if int(p.event["properties"]["$insert_id"]) % 2]

    batcher = Batcher(sent, size=4, linger=timedelta(seconds=30), prepare=odd_only)
    async with asyncio.timeout(10):
        await asyncio.gather(*(batcher.submit(_item(n)) for n in range(4)))
    assert [[e["properties"]["$insert_id"] for e in b] for b in sent.batches] == [["1", "3"]]


async def test_a_batch_with_nothing_left_sends_nothing() -> None:
    sent = Recorder()

    async def none(batch: Sequence[Pending]) -> Sequence[Pending]:
        return []

    batcher = Batcher(sent, size=2, linger=timedelta(seconds=30), prepare=none)
    async with asyncio.timeout(10):
        await asyncio.gather(batcher.submit(_item(1)), batcher.submit(_item(2)))
    assert sent.batches == []


async def test_close_sends_what_waits() -> None:
    sent = Recorder()
    batcher = Batcher(sent, size=100, linger=timedelta(seconds=30))
    async with asyncio.timeout(10):
        waiting = asyncio.gather(batcher.submit(_item(1)), batcher.submit(_item(2)))
        await asyncio.sleep(0)
        await batcher.close()
        await waiting
    assert [len(b) for b in sent.batches] == [2]


def test_a_batch_holds_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Recorder(), size=0, linger=timedelta(seconds=1))


async def test_many_submitted_at_once_fill_batches_and_return_once_all_were_accepted() -> None:
    sent = Recorder()
    batcher = Batcher(sent, size=3, linger=timedelta(milliseconds=50))
    async with asyncio.timeout(10):
        await asyncio.gather(
            batcher.submit(_item(0)), batcher.submit_many([_item(n) for n in (1, 2, 3, 4)])
        )
    assert [[int(e["properties"]["$insert_id"]) for e in b] for b in sent.batches] == [
        [0, 1, 2],
        [3, 4],
    ]


async def test_many_submitted_at_once_raise_when_one_of_their_batches_failed() -> None:
    sent = Recorder()
    sent.failure = ConnectionError("mixpanel down")
    batcher = Batcher(sent, size=2, linger=timedelta(milliseconds=10))
    with pytest.raises(ConnectionError):
        await batcher.submit_many([_item(n) for n in range(3)])
