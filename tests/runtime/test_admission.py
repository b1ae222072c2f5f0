"""Admission behaves alike on every counter store: SQL (SQLite, PostgreSQL) and Redis.

Every verdict, the order of the checks, the charges, release, batches and the rate-limit
numbers, against the rules in :mod:`m3o.runtime.counters.admission`. Time moves by the SQL store's
injected clock, and by real (short) sleeps on Redis.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import (
    FREE,
    NO_CAP,
    AdmissionDecision,
    AdmissionRequest,
    Held,
    Hold,
    Verdict,
)
from m3o.runtime.counters.redis import RedisCounterStore, redis_counter_store
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.store import create_engine, sqlite_url
from runtime.counters_fixtures import (  # noqa: F401 - a fixture
    LONG,
    PAST_SHORT,
    SHORT,
    Subject,
    call,
    holding_subject_fixture,
    sqlite_threads_stopped,
    subject_fixture,
)
from support.backends import DATABASE_BACKENDS
from support.ports import closed_port

COUNTS = ["rate", "free", "ep", "total", "bal", "debited"]
"""The counters of :func:`call`, in the order :func:`counts` reads them."""


async def counts(store: CounterStore) -> dict[str, int]:
    return dict(zip(COUNTS, await store.get_many(COUNTS), strict=True))


async def admit_times(store: CounterStore, request: AdmissionRequest, times: int) -> None:
    for _ in range(times):
        assert (await store.admit(request)).admitted


# Charges


def test_with_hold_is_the_same_request_with_the_hold() -> None:
    request = call(price=250, cap=8, cap_key="units", cap_reported=True)
    hold = Hold("book", "g.1")

    held = request.with_hold(hold)

    assert held == dataclasses.replace(request, hold=hold)
    assert request.hold is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        held.price = 1  # type: ignore[misc]


async def test_free_call_within_the_fair_use_quota_is_free(subject: Subject) -> None:
    store = subject.store
    decision = await store.admit(call())
    assert decision.verdict is Verdict.ADMITTED
    assert decision.admitted
    assert decision.charge == FREE
    assert decision.debited == 0
    assert await counts(store) == {
        "rate": 1,
        "free": 1,
        "ep": 1,
        "total": 1,
        "bal": 0,
        "debited": 0,
    }


async def test_free_call_needs_no_loaded_balance(subject: Subject) -> None:
    decision = await subject.store.admit(call())
    assert decision.charge == FREE
    assert await subject.store.get_value("bal") is None


async def test_free_call_past_the_fair_use_quota_costs_one(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 5)
    await admit_times(store, call(free_quota=2), 2)
    decision = await store.admit(call(free_quota=2))
    assert (decision.verdict, decision.charge, decision.debited) == (Verdict.ADMITTED, "1", 1)
    assert await counts(store) == {
        "rate": 3,
        "free": 2,
        "ep": 3,
        "total": 3,
        "bal": 4,
        "debited": 1,
    }


async def test_free_call_past_the_quota_without_credit_is_refused(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 0)
    decision = await store.admit(call(free_quota=0))
    assert decision.verdict is Verdict.INSUFFICIENT_CREDIT
    assert not decision.admitted
    assert decision.charge == ""


async def test_priced_call_within_the_endpoint_quota_costs_zero(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    request = call(price=300, endpoint_quota=2)
    first, second, third = [await store.admit(request) for _ in range(3)]
    assert (first.charge, first.debited) == ("0", 0)
    assert (second.charge, second.debited) == ("0", 0)
    assert (third.charge, third.debited) == ("300", 300)
    assert await counts(store) == {
        "rate": 3,
        "free": 0,
        "ep": 3,
        "total": 3,
        "bal": 700,
        "debited": 300,
    }


async def test_priced_call_debits_the_balance_and_raises_the_debits(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    await store.incr("debited", 50_000)
    decision = await store.admit(call(price=250))
    assert (decision.verdict, decision.charge, decision.debited) == (
        Verdict.ADMITTED,
        "250",
        250,
    )
    assert await store.get_many(["bal", "debited", "total", "ep", "free"]) == [
        750,
        50_250,
        1,
        1,
        0,
    ]


async def test_a_balance_equal_to_the_price_admits(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 250)
    assert (await store.admit(call(price=250))).charge == "250"
    assert await store.get("bal") == 0


# Refusals


async def test_insufficient_credit_counts_only_the_rate_hit(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 249)
    decision = await store.admit(call(price=250))
    assert decision.verdict is Verdict.INSUFFICIENT_CREDIT
    assert decision.debited == 0
    assert await counts(store) == {
        "rate": 1,
        "free": 0,
        "ep": 0,
        "total": 0,
        "bal": 249,
        "debited": 0,
    }


async def test_a_negative_balance_refuses_priced_calls(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", -10)
    assert (await store.admit(call(price=1))).verdict is Verdict.INSUFFICIENT_CREDIT


async def test_missing_balance_is_unknown_and_gives_the_rate_hit_back(subject: Subject) -> None:
    store = subject.store
    request = call(price=10, rate_limit=1)
    decision = await store.admit(request)
    assert decision.verdict is Verdict.BALANCE_UNKNOWN
    assert decision.rate_remaining == 1
    assert await counts(store) == dict.fromkeys(COUNTS, 0)
    # Loaded, the same call is admitted in the same window: the hit was given back.
    await store.set_counter_if_absent("bal", 10)
    again = await store.admit(request)
    assert (again.verdict, again.charge, again.rate_remaining) == (Verdict.ADMITTED, "10", 0)


async def test_expired_balance_is_unknown(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 100, ttl=SHORT)
    await subject.advance(PAST_SHORT)
    assert (await store.admit(call(price=1))).verdict is Verdict.BALANCE_UNKNOWN


async def test_usage_cap_reached_is_cap_exceeded(subject: Subject) -> None:
    store = subject.store
    await admit_times(store, call(cap=2), 2)
    decision = await store.admit(call(cap=2))
    assert decision.verdict is Verdict.CAP_EXCEEDED
    assert await counts(store) == {
        "rate": 3,
        "free": 2,
        "ep": 2,
        "total": 2,
        "bal": 0,
        "debited": 0,
    }


async def test_cap_compares_the_cap_key(subject: Subject) -> None:
    store = subject.store
    await store.incr("units", 7)
    assert (await store.admit(call(cap=8, cap_key="units"))).admitted
    await store.incr("units", 1)
    assert (await store.admit(call(cap=8, cap_key="units"))).verdict is Verdict.CAP_EXCEEDED
    assert await store.get("units") == 8


async def test_reported_cap_without_a_report_is_unknown_and_writes_nothing(
    subject: Subject,
) -> None:
    store = subject.store
    decision = await store.admit(call(cap=8, cap_key="units", cap_reported=True))
    assert decision.verdict is Verdict.CAP_UNKNOWN
    assert await counts(store) == dict.fromkeys(COUNTS, 0)
    await store.set_counter("units", 7)
    assert (await store.admit(call(cap=8, cap_key="units", cap_reported=True))).admitted
    await store.set_counter("units", 8)
    decision = await store.admit(call(cap=8, cap_key="units", cap_reported=True))
    assert decision.verdict is Verdict.CAP_EXCEEDED


async def test_reported_cap_of_zero_is_exceeded_without_a_report(subject: Subject) -> None:
    decision = await subject.store.admit(call(cap=0, cap_key="units", cap_reported=True))
    assert decision.verdict is Verdict.CAP_EXCEEDED


async def test_reported_cap_in_a_batch_decides_each_admission(subject: Subject) -> None:
    store = subject.store
    await store.set_counter("known", 3)
    decisions = await store.admit_many(
        [
            call(cap=5, cap_key="known", cap_reported=True),
            call(cap=5, cap_key="units", cap_reported=True),
            call(cap=3, cap_key="known", cap_reported=True),
        ]
    )
    assert [d.verdict for d in decisions] == [
        Verdict.ADMITTED,
        Verdict.CAP_UNKNOWN,
        Verdict.CAP_EXCEEDED,
    ]


async def test_cap_zero_blocks_the_endpoint(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    assert (await store.admit(call(cap=0))).verdict is Verdict.CAP_EXCEEDED
    assert (await store.admit(call(cap=0, price=5))).verdict is Verdict.CAP_EXCEEDED


async def test_no_cap_never_blocks(subject: Subject) -> None:
    store = subject.store
    await store.incr("ep", 1_000_000)
    assert (await store.admit(call(cap=NO_CAP))).admitted


async def test_rate_limit_refuses_past_the_limit_without_using_the_window(
    subject: Subject,
) -> None:
    store = subject.store
    decisions = [await store.admit(call(rate_limit=2)) for _ in range(4)]
    assert [d.verdict for d in decisions] == [
        Verdict.ADMITTED,
        Verdict.ADMITTED,
        Verdict.RATE_LIMITED,
        Verdict.RATE_LIMITED,
    ]
    assert await counts(store) == {
        "rate": 2,
        "free": 2,
        "ep": 2,
        "total": 2,
        "bal": 0,
        "debited": 0,
    }


async def test_rate_limit_zero_admits_none(subject: Subject) -> None:
    decision = await subject.store.admit(call(rate_limit=0))
    assert decision.verdict is Verdict.RATE_LIMITED
    assert decision.rate_limit == 0
    assert decision.rate_remaining == 0
    assert decision.rate_reset_after == LONG.total_seconds()
    assert await counts(subject.store) == dict.fromkeys(COUNTS, 0)


async def test_a_new_rate_window_starts_fresh(subject: Subject) -> None:
    store = subject.store
    request = call(rate_limit=1, rate_window=SHORT)
    assert (await store.admit(request)).admitted
    assert (await store.admit(request)).verdict is Verdict.RATE_LIMITED
    await subject.advance(PAST_SHORT)
    decision = await store.admit(request)
    assert decision.admitted
    assert 0 < decision.rate_reset_after <= SHORT.total_seconds()


# The order of the checks


async def test_rate_limit_comes_before_the_cap(subject: Subject) -> None:
    store = subject.store
    await store.admit(call(rate_limit=1))
    assert (await store.admit(call(rate_limit=1, cap=0))).verdict is Verdict.RATE_LIMITED


async def test_cap_comes_before_the_free_quota(subject: Subject) -> None:
    decision = await subject.store.admit(call(cap=0, free_quota=10))
    assert decision.verdict is Verdict.CAP_EXCEEDED
    assert await subject.store.get("free") == 0


async def test_free_quota_comes_before_the_endpoint_quota(subject: Subject) -> None:
    decision = await subject.store.admit(call(free_quota=1, endpoint_quota=5))
    assert decision.charge == FREE
    assert await subject.store.get("free") == 1


async def test_endpoint_quota_comes_before_the_balance(subject: Subject) -> None:
    store = subject.store
    decision = await store.admit(call(price=10, endpoint_quota=1))
    assert (decision.verdict, decision.charge) == (Verdict.ADMITTED, "0")
    assert await store.get_value("bal") is None
    # A free endpoint past the fair-use quota falls to the endpoint quota too.
    second = await store.admit(call(free_quota=0, endpoint_quota=2))
    assert (second.verdict, second.charge) == (Verdict.ADMITTED, "0")


async def test_balance_comes_last(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 0)
    await admit_times(store, call(price=10, endpoint_quota=1), 1)
    assert (await store.admit(call(price=10, endpoint_quota=1))).verdict is (
        Verdict.INSUFFICIENT_CREDIT
    )


# Rate-limit numbers


async def test_rate_numbers_count_down_through_the_window(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 0)
    window = timedelta(seconds=10)
    requests = [
        call(rate_limit=4, rate_window=window),
        call(rate_limit=4, rate_window=window, cap=0),
        call(rate_limit=4, rate_window=window, price=5),
        call(rate_limit=4, rate_window=window),
        call(rate_limit=4, rate_window=window),
    ]
    decisions = [await store.admit(r) for r in requests]
    assert [d.verdict for d in decisions] == [
        Verdict.ADMITTED,
        Verdict.CAP_EXCEEDED,
        Verdict.INSUFFICIENT_CREDIT,
        Verdict.ADMITTED,
        Verdict.RATE_LIMITED,
    ]
    assert [d.rate_remaining for d in decisions] == [3, 2, 1, 0, 0]
    assert all(d.rate_limit == 4 for d in decisions)
    assert all(9 < d.rate_reset_after <= 10 for d in decisions)
    assert decisions[-1].rate_reset_after <= decisions[0].rate_reset_after


async def test_a_rate_key_without_expiry_starts_a_window(subject: Subject) -> None:
    store = subject.store
    await store.incr("rate", 50)
    decision = await store.admit(call(rate_limit=2, rate_window=SHORT))
    assert decision.admitted
    assert decision.rate_remaining == 1
    await subject.advance(PAST_SHORT)
    assert await store.get("rate") == 0


# Expiry


async def test_counters_an_admission_creates_expire_after_the_monthly_ttl(
    subject: Subject,
) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 100)
    await store.admit(call(monthly_ttl=SHORT))
    await store.admit(call(monthly_ttl=SHORT, price=7))
    await subject.advance(PAST_SHORT)
    # The balance and the cumulative debits never expire.
    assert await counts(store) == {
        "rate": 2,
        "free": 0,
        "ep": 0,
        "total": 0,
        "bal": 93,
        "debited": 7,
    }


async def test_existing_counters_keep_their_expiry(subject: Subject) -> None:
    store = subject.store
    await store.incr("total", 5)
    await store.set_counter_if_absent("bal", 100, ttl=SHORT)
    await store.admit(call(monthly_ttl=SHORT, price=7))
    await subject.advance(PAST_SHORT)
    assert await store.get_many(["total", "ep", "bal", "debited"]) == [6, 0, 0, 7]


async def test_expired_counters_start_again(subject: Subject) -> None:
    store = subject.store
    await admit_times(store, call(monthly_ttl=SHORT, free_quota=1), 1)
    await store.set_counter_if_absent("bal", 0)
    assert (await store.admit(call(free_quota=1))).verdict is Verdict.INSUFFICIENT_CREDIT
    await subject.advance(PAST_SHORT)
    assert (await store.admit(call(free_quota=1))).charge == FREE


# Release


async def test_release_gives_back_a_priced_call(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    await admit_times(store, call(), 1)
    before = await counts(store)
    decision = await store.admit(call(price=300))
    await store.release(call(price=300), decision)
    assert await counts(store) == {**before, "rate": 2}


async def test_release_gives_back_a_free_call(subject: Subject) -> None:
    store = subject.store
    request = call(free_quota=1)
    decision = await store.admit(request)
    await store.release(request, decision)
    assert await counts(store) == {
        "rate": 1,
        "free": 0,
        "ep": 0,
        "total": 0,
        "bal": 0,
        "debited": 0,
    }
    assert (await store.admit(request)).charge == FREE


async def test_release_gives_back_an_endpoint_quota_call(subject: Subject) -> None:
    store = subject.store
    request = call(price=10, endpoint_quota=1)
    decision = await store.admit(request)
    await store.release(request, decision)
    assert await store.get_many(["ep", "total", "free", "debited"]) == [0, 0, 0, 0]
    assert (await store.admit(request)).charge == "0"


async def test_release_of_a_refused_decision_does_nothing(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 5)
    await admit_times(store, call(), 1)
    before = await counts(store)
    refused = await store.admit(call(price=10))
    assert refused.verdict is Verdict.INSUFFICIENT_CREDIT
    await store.release(call(price=10), refused)
    await store.release(call(price=10), AdmissionDecision(Verdict.CAP_EXCEEDED))
    assert await counts(store) == {**before, "rate": 2}


async def test_release_with_an_unloaded_balance_refunds_through_the_debits(
    subject: Subject,
) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 100)
    decision = await store.admit(call(price=30))
    await store.delete("bal")
    await store.release(call(price=30), decision)
    assert await store.get_value("bal") is None
    assert await store.get("bal") == 0
    assert await store.get("debited") == 0
    # Loading the balance again (set_counter_if_absent) still works.
    assert await store.set_counter_if_absent("bal", 100) is True


async def test_release_does_not_recreate_expired_counters(subject: Subject) -> None:
    store = subject.store
    request = call(monthly_ttl=SHORT)
    decision = await store.admit(request)
    await subject.advance(PAST_SHORT)
    await store.release(request, decision)
    await store.incr("total", 1, ttl=LONG)
    await store.incr("ep", 1, ttl=LONG)
    # Recreated with the new TTL from 1, not from -1 left by the release.
    assert await store.get_many(["total", "ep", "free"]) == [1, 1, 0]


# Holds: the reservation written down with the admission, committed, settled or released


BOOK = "book"


def held(store_holds: list[Held]) -> dict[str, tuple[str, int, str | None]]:
    """Each hold's id -> (charge, debited, note)."""
    return {h.hold.id: (h.decision.charge, h.decision.debited, h.note) for h in store_holds}


async def test_an_admission_writes_its_hold_with_what_a_release_needs(
    holding_subject: Subject,
) -> None:
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    priced, free, refused = Hold(BOOK, "g.1"), Hold(BOOK, "g.2"), Hold(BOOK, "g.3")
    await store.admit(call(price=300, hold=priced))
    await store.admit(call(hold=free))
    assert (await store.admit(call(price=5_000, hold=refused))).verdict is (
        Verdict.INSUFFICIENT_CREDIT
    )

    found = await store.holds(BOOK)
    assert held(found) == {"g.1": ("300", 300, None), "g.2": (FREE, 0, None)}
    [first] = [h for h in found if h.hold == priced]
    request = first.request
    assert (request.free_key, request.endpoint_key, request.total_key) == ("free", "ep", "total")
    assert (request.balance_key, request.debited_key, request.hold) == ("bal", "debited", priced)
    assert await store.holds("another-book") == []


async def test_admit_many_writes_the_hold_of_each_admitted_call(holding_subject: Subject) -> None:
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 100)
    requests = [call(price=60, hold=Hold(BOOK, f"g.{n}")) for n in range(3)]
    decisions = await store.admit_many(requests)
    assert [d.verdict for d in decisions] == [
        Verdict.ADMITTED,
        Verdict.INSUFFICIENT_CREDIT,
        Verdict.INSUFFICIENT_CREDIT,
    ]
    assert held(await store.holds(BOOK)) == {"g.0": ("60", 60, None)}


async def test_a_release_with_a_hold_gives_back_what_the_hold_says_once(
    holding_subject: Subject,
) -> None:
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    await admit_times(store, call(), 1)
    before = await counts(store)
    request = call(price=300, hold=Hold(BOOK, "g.1"))
    assert (await store.admit(request)).admitted
    # The caller does not know what was reserved (the admission's reply was lost).
    unknown = AdmissionDecision(Verdict.ADMITTED)
    await store.release(request, unknown)
    await store.release(request, unknown)
    await store.release(request, AdmissionDecision(Verdict.ADMITTED, charge="300", debited=300))
    assert await counts(store) == {**before, "rate": 2}
    assert await store.holds(BOOK) == []


async def test_a_release_of_a_hold_never_written_does_nothing(holding_subject: Subject) -> None:
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    await admit_times(store, call(), 2)
    before = await counts(store)
    never = call(price=300, hold=Hold(BOOK, "g.9"))
    await store.release(never, AdmissionDecision(Verdict.ADMITTED, charge="300", debited=300))
    await store.release(call(hold=Hold(BOOK, "g.8")), AdmissionDecision(Verdict.ADMITTED, FREE))
    assert await counts(store) == before


async def test_commit_many_marks_each_hold_served_once(holding_subject: Subject) -> None:
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    first, second, gone = Hold(BOOK, "g.1"), Hold(BOOK, "g.2"), Hold(BOOK, "g.3")
    await store.admit_many([call(price=10, hold=first), call(price=20, hold=second)])
    assert await store.commit_many([]) == []

    found = await store.commit_many([(first, "note 1"), (gone, "note 3"), (second, "note 2")])
    assert found == [True, False, True]
    # Committing again finds the hold and keeps its first note.
    assert await store.commit_many([(first, "another")]) == [True]
    assert held(await store.holds(BOOK)) == {
        "g.1": ("10", 10, "note 1"),
        "g.2": ("20", 20, "note 2"),
    }
    assert await store.get("debited") == 30


async def test_a_released_hold_cannot_be_committed(holding_subject: Subject) -> None:
    subject = holding_subject
    store = subject.store
    request = call(hold=Hold(BOOK, "g.1"))
    decision = await store.admit(request)
    await store.release(request, decision)
    assert await store.commit_many([(Hold(BOOK, "g.1"), "late")]) == [False]
    assert await store.holds(BOOK) == []


async def test_a_committed_hold_released_gives_back_its_reservation(
    holding_subject: Subject,
) -> None:
    """The commit's reply was lost: the caller cannot know, so it releases."""
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    request = call(price=300, hold=Hold(BOOK, "g.1"))
    decision = await store.admit(request)
    assert await store.commit_many([(Hold(BOOK, "g.1"), "served")]) == [True]
    await store.release(request, decision)
    assert await store.get_many(["bal", "debited", "total", "ep"]) == [1_000, 0, 0, 0]
    assert await store.holds(BOOK) == []


async def test_settling_removes_the_hold_and_keeps_the_charge(holding_subject: Subject) -> None:
    subject = holding_subject
    store = subject.store
    await store.set_counter_if_absent("bal", 1_000)
    kept, other = Hold(BOOK, "g.1"), Hold(BOOK, "g.2")
    request = call(price=300, hold=kept)
    decision = await store.admit(request)
    await store.admit(call(price=100, hold=other))
    await store.commit_many([(kept, "served")])
    after = await counts(store)

    await store.settle_many([])
    await store.settle_many([kept, Hold(BOOK, "g.9")])
    await store.settle_many([kept])  # again: nothing left to remove
    assert held(await store.holds(BOOK)) == {"g.2": ("100", 100, None)}
    # A settled call is charged for good: releasing it now gives nothing back.
    await store.release(request, decision)
    assert await counts(store) == after
    assert await store.get_many(["bal", "debited"]) == [600, 400]


# Batches


async def test_admit_many_sees_earlier_reservations(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 25)
    decisions = await store.admit_many([call(price=10)] * 3)
    assert [d.verdict for d in decisions] == [
        Verdict.ADMITTED,
        Verdict.ADMITTED,
        Verdict.INSUFFICIENT_CREDIT,
    ]
    assert await store.get_many(["bal", "debited", "total", "rate"]) == [5, 20, 2, 3]


async def test_admit_many_keeps_quotas_and_rate_limits_across_the_batch(
    subject: Subject,
) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 100)
    decisions = await store.admit_many([call(free_quota=2, rate_limit=4)] * 6)
    assert [d.charge for d in decisions] == [FREE, FREE, "1", "1", "", ""]
    assert [d.verdict for d in decisions[4:]] == [Verdict.RATE_LIMITED] * 2
    assert [d.rate_remaining for d in decisions] == [3, 2, 1, 0, 0, 0]


async def test_admit_many_decides_each_project_on_its_own(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 10)
    other = call(
        rate_key="rate2",
        free_key="free2",
        endpoint_key="ep2",
        cap_key="ep2",
        total_key="total2",
        balance_key="bal2",
        debited_key="debited2",
        price=10,
    )
    decisions = await store.admit_many([call(price=10), other, call(price=10), call()])
    assert [d.verdict for d in decisions] == [
        Verdict.ADMITTED,
        Verdict.BALANCE_UNKNOWN,
        Verdict.INSUFFICIENT_CREDIT,
        Verdict.ADMITTED,
    ]
    assert await store.get_many(["total", "total2", "rate", "rate2"]) == [2, 0, 3, 0]


async def test_a_batch_decides_and_counts_as_its_admissions_one_by_one(
    subject: Subject,
) -> None:
    # A mixed batch over two projects sharing keys in every way the gateway shares them
    # (the cap counts the endpoint, free and priced calls, quotas and the rate limit run
    # out in the middle): the batch's verdicts, charges, rate numbers and counters are
    # those of the same admissions made one at a time on keys of their own.
    store = subject.store

    def mixed(prefix: str) -> list[AdmissionRequest]:
        def one(project: str, **changes: Any) -> AdmissionRequest:
            named = {f: f"{prefix}{project}{f}" for f in ("rate", "free", "ep", "total")}
            return call(
                rate_key=named["rate"],
                free_key=named["free"],
                endpoint_key=named["ep"],
                cap_key=named["ep"],
                total_key=named["total"],
                balance_key=f"{prefix}{project}bal",
                debited_key=f"{prefix}{project}debited",
                **changes,
            )

        plans: list[dict[str, Any]] = [
            {"free_quota": 2, "rate_limit": 9},
            {"price": 4, "rate_limit": 9},
            {"price": 4, "endpoint_quota": 2, "rate_limit": 9},
            {"cap": 5, "price": 3, "rate_limit": 9},
        ]
        return [
            one(project, **plans[(i * 7 + len(project)) % 4])
            for i in range(14)
            for project in ("p", "qq")
        ]

    for prefix in ("one:", "batch:"):
        await store.set_counter_if_absent(f"{prefix}pbal", 30)
        await store.set_counter_if_absent(f"{prefix}qqbal", 9)
    singles = [await store.admit(request) for request in mixed("one:")]
    batch = await store.admit_many(mixed("batch:"))

    def seen(decision: AdmissionDecision) -> tuple[Any, ...]:
        return (decision.verdict, decision.charge, decision.debited, decision.rate_remaining)

    assert [seen(d) for d in batch] == [seen(d) for d in singles]
    assert {d.verdict for d in batch} >= {
        Verdict.ADMITTED,
        Verdict.RATE_LIMITED,
        Verdict.INSUFFICIENT_CREDIT,
        Verdict.CAP_EXCEEDED,
    }
    names = [f"{p}{c}" for p in ("p", "qq") for c in (*COUNTS, "bal")]
    assert await store.get_many([f"batch:{n}" for n in names]) == await store.get_many(
        [f"one:{n}" for n in names]
    )


async def test_counters_a_batch_creates_expire_after_the_monthly_ttl(
    subject: Subject,
) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 100)
    await store.incr("total", 5)
    decisions = await store.admit_many(
        [call(monthly_ttl=SHORT), call(monthly_ttl=SHORT, price=7), call(monthly_ttl=SHORT)]
    )
    assert all(d.admitted for d in decisions)
    assert await store.get_many(["free", "ep", "total"]) == [2, 3, 8]
    await subject.advance(PAST_SHORT)
    # An existing counter keeps its (lack of) expiry; the balance and debits never expire.
    assert await counts(store) == {
        "rate": 3,
        "free": 0,
        "ep": 0,
        "total": 8,
        "bal": 93,
        "debited": 7,
    }


async def test_admit_many_of_nothing_is_nothing(subject: Subject) -> None:
    assert await subject.store.admit_many([]) == []


async def test_admit_many_decides_as_admit_does(subject: Subject) -> None:
    store = subject.store
    await store.set_counter_if_absent("bal", 0)
    (decision,) = await store.admit_many([call(price=3)])
    assert decision.verdict is Verdict.INSUFFICIENT_CREDIT
    assert decision.rate_remaining == 99


# Requests and reachability


@pytest.mark.parametrize(
    "changes",
    [
        {"rate_limit": -1},
        {"price": -1},
        {"free_quota": -1},
        {"endpoint_quota": -1},
        {"cap": -2},
        {"monthly_ttl": timedelta(0)},
        {"rate_window": timedelta(seconds=-1)},
    ],
)
def test_nonsense_requests_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        call(**changes)


async def test_redis_admit_many_loads_its_script_again_when_redis_lost_it(
    redis: aioredis.Redis,
) -> None:
    store = RedisCounterStore(redis, prefix="test:")
    await store.admit(call())
    await redis.script_flush()
    decisions = await store.admit_many([call(free_quota=2)] * 3)
    assert [d.charge for d in decisions] == [FREE, "", ""]
    assert decisions[2].verdict is Verdict.BALANCE_UNKNOWN
    assert await store.get_many(["free", "total", "rate"]) == [2, 2, 2]
    await redis.script_flush()
    assert (await store.admit(call())).charge == FREE


async def test_unreachable_redis_is_unavailable() -> None:
    store = redis_counter_store(f"redis://127.0.0.1:{closed_port()}/0")
    decision = AdmissionDecision(Verdict.ADMITTED, charge="5", debited=5)
    try:
        for operation in (
            lambda: store.admit(call()),
            lambda: store.admit_many([call(), call()]),
            lambda: store.release(call(price=5), decision),
        ):
            with pytest.raises(Unavailable) as caught:
                await operation()
            assert caught.value == Unavailable("counters", "Counter store unavailable")
    finally:
        await store.close()


@pytest.mark.parametrize("backend", DATABASE_BACKENDS)
async def test_unreachable_database_is_unavailable(backend: str, tmp_path: Path) -> None:
    url = (
        sqlite_url(str(tmp_path / "missing-dir" / "m3o.db"))
        if backend == "sqlite"
        else f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test"
    )
    engine = create_engine(url, pool_size=1)
    store = SqlCounterStore(engine)
    decision = AdmissionDecision(Verdict.ADMITTED, charge="5", debited=5)
    try:
        for operation in (
            lambda: store.admit(call()),
            lambda: store.admit_many([call(), call()]),
            lambda: store.release(call(price=5), decision),
        ):
            with pytest.raises(Unavailable):
                await operation()
    finally:
        await engine.dispose()
        await sqlite_threads_stopped()
