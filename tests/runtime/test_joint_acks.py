"""Acknowledgements arriving together are committed together; each caller learns the
outcome of its own."""

from __future__ import annotations

import asyncio

import pytest

from m3o.runtime.events._acks import JointAcks, Take


class Commits:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, take: Take) -> None:
        self.started.set()
        await self.release.wait()
        receipts = take()
        await asyncio.sleep(0.01)  # the round trip
        if self.fail:
            raise ConnectionError("store down")
        self.batches.append(list(receipts))


async def test_acknowledgements_arriving_together_are_one_commit() -> None:
    commits = Commits()
    acks = JointAcks(commits)

    await asyncio.gather(*(acks.ack(f"r{n}") for n in range(5)))

    assert commits.batches == [["r0", "r1", "r2", "r3", "r4"]]


async def test_those_arriving_while_the_commit_waits_join_it_and_later_ones_start_anew() -> None:
    commits = Commits()
    commits.release.clear()  # the store is busy: the first commit waits for its turn
    acks = JointAcks(commits)
    first = asyncio.create_task(acks.ack("r0"))
    await commits.started.wait()
    joined = asyncio.create_task(acks.ack("r1"))
    await asyncio.sleep(0)
    commits.release.set()
    await asyncio.sleep(0)  # the commit has taken its receipts and is on its way
    later = asyncio.create_task(acks.ack("r2"))

    await asyncio.gather(first, joined, later)

    assert commits.batches == [["r0", "r1"], ["r2"]]


async def test_a_failed_commit_fails_every_acknowledgement_in_it() -> None:
    acks = JointAcks(Commits(fail=True))

    results = await asyncio.gather(*(acks.ack(f"r{n}") for n in range(3)), return_exceptions=True)

    assert [type(result) for result in results] == [ConnectionError] * 3


async def test_a_cancelled_commit_fails_the_others_without_cancelling_them() -> None:
    commits = Commits()
    commits.release.clear()
    acks = JointAcks(commits)
    leader = asyncio.create_task(acks.ack("r0"))
    await commits.started.wait()
    follower = asyncio.create_task(acks.ack("r1"))
    await asyncio.sleep(0)

    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    with pytest.raises(RuntimeError, match="interrupted"):
        await follower
    assert commits.batches == []


async def test_a_batch_of_receipts_joins_the_commit_under_way() -> None:
    commits = Commits()
    acks = JointAcks(commits)

    await asyncio.gather(acks.ack("r0"), acks.ack("r1", "r2", "r3"), acks.ack())

    assert commits.batches == [["r0", "r1", "r2", "r3"]]
