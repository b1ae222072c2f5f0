"""Collecting the events of both consumers into batches of Mixpanel's size.

The request events come a claimed batch at a time (:meth:`Batcher.submit_many`), the
customers events one at a time from handlers running at once (:meth:`Batcher.submit`);
both join the open batch and wait: a batch is sent when it holds ``size`` events, or
``linger`` after its first event arrived, whichever is first. Submitting returns once the
batches joined were accepted, and raises when sending one failed, so the bus acknowledges
an event only after Mixpanel accepted it and retries it otherwise (nothing is lost; a
repeat carries the same ``$insert_id``, which Mixpanel drops).

Before a batch is sent, ``prepare`` may drop events from it (the ignore list, checked once
per batch); their handlers return as if sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from m3o.runtime.logging import get_logger

__all__ = ["Batcher", "Pending", "Prepare", "Send"]

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Pending:
    """One event waiting for its batch: what is sent, and who it is about."""

    event: dict[str, Any]
    """The Mixpanel event as sent."""
    customer_id: str = ""
    """The customer it is about (customers events)."""
    email_ignored: bool | None = None
    """Whether the event's email is on the ignore list; None when it carries none."""
    project_id: str = ""
    """The project it is about (requests events)."""


Send = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]
"""Sends one batch (at most ``size`` events); raises when it was not accepted."""
Prepare = Callable[[Sequence[Pending]], Awaitable[Sequence[Pending]]]
"""Returns the events of a batch that are to be sent."""


async def _keep_all(batch: Sequence[Pending]) -> Sequence[Pending]:
    return batch


@dataclass(eq=False)
class _Batch:
    items: list[Pending] = field(default_factory=list)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batcher:
    def __init__(
        self,
        send: Send,
        *,
        size: int,
        linger: timedelta,
        prepare: Prepare = _keep_all,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._send = send
        self._prepare = prepare
        self._size = size
        self._linger = linger.total_seconds()
        self._open: _Batch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def submit(self, item: Pending) -> None:
        """Returns once ``item``'s batch was accepted (or ``item`` dropped); raises if not."""
        await self.submit_many([item])

    async def submit_many(self, items: Sequence[Pending]) -> None:
        """Returns once every batch ``items`` joined was accepted; raises if one was not."""
        joined: list[_Batch] = []
        for item in items:
            batch = self._open
            if batch is None:
                batch = self._open = _Batch()
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._linger, self._close, batch)
            if not joined or joined[-1] is not batch:
                joined.append(batch)
            batch.items.append(item)
            if len(batch.items) >= self._size:
                self._close(batch)
        # shield: a cancelled handler must not cancel the batches the others wait for
        for batch in joined:
            await asyncio.shield(batch.done)

    async def close(self) -> None:
        """Sends what is waiting and waits for every batch under way."""
        if self._open is not None:
            self._close(self._open)
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    def _close(self, batch: _Batch) -> None:
        if self._open is not batch:
            return  # already closed (full before its linger ended)
        self._open = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.create_task(self._flush(batch), name="mixpanel:batch")
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, batch: _Batch) -> None:
        try:
            kept = await self._prepare(batch.items)
            if kept:
                await self._send([item.event for item in kept])
        except asyncio.CancelledError:
            batch.done.cancel()  # nobody may be left waiting
            raise
        except Exception as exc:  # noqa: BLE001 - every waiting handler gets the failure
            _log.warning("mixpanel.batch_failed", events=len(batch.items), error=str(exc))
            batch.done.set_exception(exc)
            batch.done.exception()  # retrieved: handlers that gave up waiting do not warn
            return
        batch.done.set_result(None)
