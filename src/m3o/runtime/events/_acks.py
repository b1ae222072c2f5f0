"""Acknowledgements that arrive together, committed together.

A consumer's handlers often finish in the same moment (a batch of events, handled in one
write, lets all its handlers return at once), and each then acknowledges its event. Each
acknowledgement is a round trip (an ``XACK``, a ``DELETE`` in its own transaction); here
the first one commits for all that arrive before its commit actually starts, in one
statement. Every caller returns once its acknowledgement is committed, and raises if that
failed (the event is then delivered again: at least once, as before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["JointAcks", "Take"]

Take = Callable[[], list[str]]
"""Closes the batch and gives its receipts: called by the commit at the last moment it can
still add receipts (later ones start the next batch)."""


class _Batch:
    def __init__(self, receipts: tuple[str, ...]) -> None:
        self.receipts = list(receipts)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done.add_done_callback(_consume_result)


def _consume_result(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # seen here, so a failure nobody else waited for is not logged


class JointAcks:
    """``commit(take)`` acknowledges the receipts ``take()`` returns, in one go."""

    def __init__(self, commit: Callable[[Take], Awaitable[None]]) -> None:
        self._commit = commit
        self._open: _Batch | None = None

    async def ack(self, *receipts: str) -> None:
        """Acknowledge ``receipts`` (one or a batch's), joining the commit under way."""
        if not receipts:
            return
        joined = self._open
        if joined is not None:
            joined.receipts.extend(receipts)
            await asyncio.shield(joined.done)
            return
        batch = self._open = _Batch(receipts)

        def take() -> list[str]:
            if self._open is batch:
                self._open = None
            return batch.receipts

        try:
            await asyncio.sleep(0)  # handlers finishing in this same moment join first
            await self._commit(take)
        except BaseException as exc:
            take()
            if isinstance(exc, Exception):
                batch.done.set_exception(exc)
            else:  # the committing task was cancelled: the others' events come back later
                batch.done.set_exception(RuntimeError("acknowledgement interrupted"))
            raise
        batch.done.set_result(None)
