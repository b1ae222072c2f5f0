"""Admissions of concurrent calls sent to the counter store together.

Every admission asked for during one turn of the event loop is sent in one
``admit_many`` (one Redis round trip, one SQL transaction) on the next turn. While
``max_in_flight`` batches are out, new admissions wait and go in the next batch, so under
load batches grow instead of round trips multiplying. Each decision is still atomic and
sees the reservations of the ones before it.

A caller that stops waiting (its client went away) does not leak a reservation: when its
decision arrives admitted, it is released; when the batch fails, an admission with a hold
(that may have reserved before its reply was lost) is released by its hold.

:class:`DirectAdmissions` is for a counter store that decides in memory (the local
profile's owned counters, :mod:`m3o.runtime.counters.owned`): there a batch saves no round
trip and would only cost loop turns, so each call's admission runs in its own task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Verdict
from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_IN_FLIGHT",
    "AdmissionBatcher",
    "Admissions",
    "DirectAdmissions",
]

_log = get_logger(__name__)

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_IN_FLIGHT = 4

_Waiter = tuple[AdmissionRequest, "asyncio.Future[AdmissionDecision]"]


class Admissions(Protocol):
    """How the gate has its admissions decided and released."""

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision: ...

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None: ...

    async def drain(self) -> None:
        """Wait for every admission under way (shut-down)."""
        ...


class DirectAdmissions:
    """Each admission decided in its caller's task, alone (see the module's description).

    A caller cancelled while its admission waits for the store (reading a key it does not
    hold yet) has reserved nothing: an owned store decides only after its last wait."""

    def __init__(self, counters: CounterStore) -> None:
        self._counters = counters

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        [decision] = await self._counters.admit_many([request])
        return decision

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        await self._counters.release(request, decision)

    async def drain(self) -> None:
        return None


class AdmissionBatcher:
    def __init__(
        self,
        counters: CounterStore,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        release: Callable[[AdmissionRequest, AdmissionDecision], Awaitable[None]] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be positive")
        self._counters = counters
        self._release = release or counters.release
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[_Waiter] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, request: AdmissionRequest) -> AdmissionDecision:
        """Decide and reserve one call, batched with the others of this loop turn."""
        future: asyncio.Future[AdmissionDecision] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._schedule()
        return await future

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        await self._counters.release(request, decision)

    async def drain(self) -> None:
        """Wait for every batch sent so far (shut-down)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _schedule(self) -> None:
        if not self._scheduled and self._pending and self._in_flight < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self._max_in_flight:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: Sequence[_Waiter]) -> None:
        try:
            decisions = await self._counters.admit_many([request for request, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter gets the failure, whatever it is
            for request, future in batch:
                if not future.done():
                    future.set_exception(exc)
                elif request.hold is not None:
                    # Abandoned, and it may have reserved: its hold says.
                    self._release_abandoned(request, AdmissionDecision(Verdict.ADMITTED))
            return
        finally:
            self._in_flight -= 1
            self._schedule()
        for (request, future), decision in zip(batch, decisions, strict=True):
            if not future.done():
                future.set_result(decision)
            elif decision.admitted:
                self._release_abandoned(request, decision)

    def _release_abandoned(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        async def release() -> None:
            try:
                await self._release(request, decision)
            except M3OError as exc:
                _log.error("v1.release_failed", reason="abandoned", error=exc.detail)

        task = asyncio.get_running_loop().create_task(release())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
