"""The runner: customers held in order, lost races tried again, then given up; counters
moved back when the write fails."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.errors import Unavailable
from m3o.runtime.store import SessionFactory
from m3o.services.balance import locking
from m3o.services.balance.ledger import Account
from m3o.services.balance.locking import ATTEMPTS, KeyedLocks, Lost, Runner


async def test_keyed_locks_serialise_a_key_and_forget_it_when_free() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, keys: list[str]) -> None:
        async with locks.hold(keys):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", ["x", "y"]), hold("b", ["y", "x"]), hold("c", ["z"]))

    assert order.index("a-") < order.index("b+") or order.index("b-") < order.index("a+")
    assert locks._locks == {}


class Recorder:
    """A step that records its phases; ``lose`` times its write reports a lost race."""

    creates_accounts = True

    def __init__(self, log: list[str], *, lose: int = 0, fail_undo: bool = False) -> None:
        self.log = log
        self.lose = lose
        self.fail_undo = fail_undo

    async def read(self, session: AsyncSession, accounts: dict[str, Account]) -> None:
        self.log.append("read:" + ",".join(accounts))

    async def counters(self) -> None:
        self.log.append("counters")

    async def write(self, session: AsyncSession) -> str:
        if sum(1 for entry in self.log if entry == "write") < self.lose:
            self.log.append("write")
            raise Lost("ann")
        self.log.append("write")
        return "done"

    async def undo(self) -> None:
        self.log.append("undo")
        if self.fail_undo:
            raise Unavailable("counters", "gone")

    async def finish(self) -> None:
        self.log.append("finish")


async def test_a_lost_race_is_undone_and_tried_again(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locking, "RETRY_PAUSE", 0.0)
    log: list[str] = []
    step = Recorder(log, lose=2)

    assert await Runner(sessions).run(["b", "a"], lambda: step) == "done"

    assert log == [
        *["read:a,b", "counters", "write", "undo"] * 2,
        *["read:a,b", "counters", "write", "finish"],
    ]


async def test_an_operation_that_keeps_losing_gives_up_as_unavailable(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locking, "RETRY_PAUSE", 0.0)
    log: list[str] = []

    with pytest.raises(Unavailable) as raised:
        await Runner(sessions).run(["a"], lambda: Recorder(log, lose=ATTEMPTS + 1))

    assert raised.value == Unavailable("balance", "Balance busy, please try again")
    assert log.count("write") == ATTEMPTS


async def test_a_failing_undo_is_logged_and_the_original_error_raised(
    sessions: SessionFactory,
) -> None:
    class Crashing(Recorder):
        async def write(self, session: AsyncSession) -> str:
            raise RuntimeError("disk full")

    with structlog.testing.capture_logs() as logs, pytest.raises(RuntimeError, match="disk"):
        await Runner(sessions).run(["a"], lambda: Crashing([], fail_undo=True))

    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["balance.undo_failed"]
