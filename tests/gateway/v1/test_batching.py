"""Admissions of concurrent calls go to the counter store together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from m3o.gateway.v1.batching import AdmissionBatcher, DirectAdmissions
from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Verdict
from m3o.runtime.errors import Unavailable
from runtime.counters_fixtures import call


def _request(n: int) -> AdmissionRequest:
    return call(rate_key=f"rate-{n}", rate_limit=10, cap_key="cap", balance_key="balance")


class Store:
    """Admits everything; records each batch; can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.released: list[str] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.error: Exception | None = None

    async def admit_many(self, requests: Sequence[AdmissionRequest]) -> list[AdmissionDecision]:
        self.batches.append([r.rate_key for r in requests])
        await self.hold.wait()
        if self.error is not None:
            raise self.error
        return [AdmissionDecision(Verdict.ADMITTED, charge="free") for _ in requests]

    async def release(self, request: AdmissionRequest, decision: AdmissionDecision) -> None:
        self.released.append(request.rate_key)


async def test_admissions_of_one_loop_turn_share_one_round_trip() -> None:
    store = Store()
    batcher = AdmissionBatcher(store)  # type: ignore[arg-type]
    decisions = await asyncio.gather(*(batcher.admit(_request(n)) for n in range(50)))
    assert all(d.admitted for d in decisions)
    assert store.batches == [[f"rate-{n}" for n in range(50)]]


async def test_batches_are_bounded_in_size_and_in_flight() -> None:
    store = Store()
    store.hold.clear()
    batcher = AdmissionBatcher(store, max_batch=3, max_in_flight=2)  # type: ignore[arg-type]
    waiting = [asyncio.ensure_future(batcher.admit(_request(n))) for n in range(10)]
    await asyncio.sleep(0.01)
    assert store.batches == [["rate-0", "rate-1", "rate-2"], ["rate-3", "rate-4", "rate-5"]]
    store.hold.set()
    await asyncio.gather(*waiting)
    assert sorted(len(b) for b in store.batches) == [1, 3, 3, 3]


async def test_a_failed_batch_fails_each_of_its_calls() -> None:
    store = Store()
    store.error = Unavailable("counters", "Counter store unavailable")
    batcher = AdmissionBatcher(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(batcher.admit(_request(n)) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results)
    store.error = None
    assert (await batcher.admit(_request(9))).admitted


async def test_a_call_abandoned_while_admitted_is_released() -> None:
    store = Store()
    store.hold.clear()
    batcher = AdmissionBatcher(store)  # type: ignore[arg-type]
    abandoned = asyncio.ensure_future(batcher.admit(_request(1)))
    kept = asyncio.ensure_future(batcher.admit(_request(2)))
    await asyncio.sleep(0.01)
    abandoned.cancel()
    store.hold.set()
    assert (await kept).admitted
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    await batcher.drain()
    assert store.released == ["rate-1"]


async def test_direct_admissions_are_decided_alone_without_a_turn_of_the_loop() -> None:
    """For a store that decides in memory: no batch, and no loop turn waited for."""
    store = Store()
    admissions = DirectAdmissions(store)  # type: ignore[arg-type]
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)

    first = await admissions.admit(_request(1))

    assert first.admitted
    assert turned == []
    await asyncio.gather(*(admissions.admit(_request(n)) for n in (2, 3)))
    assert store.batches == [["rate-1"], ["rate-2"], ["rate-3"]]
    await admissions.release(_request(1), first)
    await admissions.drain()
    assert store.released == ["rate-1"]


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AdmissionBatcher(Store(), max_batch=0)  # type: ignore[arg-type]
