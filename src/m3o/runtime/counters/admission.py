"""The gateway's per-call decision: one atomic operation against the counter store.

Admission checks, in the order of ``spec/gateway.md`` (steps 3 to 7; the key's status and
scopes are checked in the gateway before), and reserves what the call uses:

1. rate limit: one hit in the project's fixed one-second window ``rate_key``; over
   ``rate_limit`` -> ``RATE_LIMITED`` (a refused hit does not use the window up);
2. usage cap: ``cap == 0``, or ``cap > 0`` and the value of ``cap_key`` >= ``cap`` ->
   ``CAP_EXCEEDED``; with ``cap_reported`` (``cap_key`` holds the unit usage the API
   reported, not a count of calls) a ``cap_key`` that does not exist -> ``CAP_UNKNOWN``
   (the caller asks the API for its usage, stores it and tries again; the rate hit is
   given back);
3. ``price == 0`` and ``free_key`` < ``free_quota`` -> admitted, charge ``free``
   (``free_key`` counts it); ``price == 0`` with that quota used up -> the call costs 1;
4. ``endpoint_key`` < ``endpoint_quota`` -> admitted, charge ``0``;
5. the hot balance ``balance_key`` >= price -> admitted, charge ``<price>``: the balance is
   debited and ``debited_key`` (cumulative request debits) raised by the price;
   a balance key that does not exist -> ``BALANCE_UNKNOWN`` (the caller asks the balance
   service to load it and tries again; the rate hit is given back); else
   ``INSUFFICIENT_CREDIT``.

An admitted call also counts in ``total_key`` and ``endpoint_key``. Monthly counters get
``monthly_ttl`` when created (``debited_key`` never expires; counters that exist keep their
expiry). Nothing is counted for a refused call except the rate hit, and nothing at all for
``BALANCE_UNKNOWN``, ``CAP_UNKNOWN`` or ``RATE_LIMITED``. Every decision carries the rate
window's numbers after it (limit, calls left, seconds until it ends) for the
``RateLimit-*`` headers.

:meth:`~m3o.runtime.counters.CounterStore.release` undoes an admitted call's reservation
(the upstream failed): counters back down, the debit refunded. The rate hit stays.
Counters that expired meanwhile stay missing; a hot balance that is not loaded is left
missing too, and the refund reaches it through ``debited_key``, which it is loaded from.

Implementations: :mod:`m3o.runtime.counters.admission_redis` (one Lua script per admission,
``admit_many`` pipelines them in one round trip) and :mod:`m3o.runtime.counters.admission_sqlite`
(one transaction per call or batch, rows locked in key order). An unreachable store raises
``Unavailable``; a request with a negative limit, price or quota raises ``ValueError`` when
it is built.

Keys are built by the services that own them (usage: the monthly counters; balance: the
hot balance and cumulative debits; v1: the rate window); this module knows none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

__all__ = [
    "FREE",
    "NO_CAP",
    "AdmissionDecision",
    "AdmissionRequest",
    "Held",
    "Hold",
    "Verdict",
    "held_from_record",
    "hold_record",
    "release_keys",
]

FREE = "free"
"""The charge of a call admitted under the monthly fair-use quota."""

NO_CAP = -1
"""``AdmissionRequest.cap`` when the endpoint has no usage cap."""


class Verdict(Enum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    CAP_EXCEEDED = "cap_exceeded"
    INSUFFICIENT_CREDIT = "insufficient_credit"
    BALANCE_UNKNOWN = "balance_unknown"
    CAP_UNKNOWN = "cap_unknown"


@dataclass(frozen=True, slots=True)
class Hold:
    """Where an admitted call's reservation is written down, in the same atomic step as
    the reservation itself, until the call is committed and settled or released."""

    book: str
    """The key of the book of holds (the gateway's)."""
    id: str
    """The call's id in the book (unique)."""


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    rate_key: str
    """The project's rate window (one second)."""
    rate_limit: int
    """Calls per window; 0 admits none."""
    cap: int
    """Usage cap of the endpoint on the project's tier; :data:`NO_CAP` for none, 0: the
    endpoint is not available on the tier."""
    cap_key: str
    """Counter holding the unit usage the cap is compared with: the endpoint's monthly
    call count, or (``cap_reported``) the units the API last reported."""
    price: int
    """The endpoint's price in 1/10,000ths of a cent; 0 for a free endpoint."""
    free_key: str
    """The project's monthly count of calls charged ``free``."""
    free_quota: int
    """Monthly free calls to free endpoints on the project's tier."""
    endpoint_key: str
    """The project's monthly count of calls to this endpoint."""
    endpoint_quota: int
    """The endpoint's monthly free calls (catalog); 0 for none."""
    total_key: str
    """The project's monthly count of all calls."""
    balance_key: str
    """The billing customer's hot balance."""
    debited_key: str
    """The billing customer's cumulative request debits (never reset: the balance service
    writes the difference to what it last recorded into the ledger)."""
    monthly_ttl: timedelta = timedelta(days=40)
    """Expiry given to monthly counters when an admission creates them."""
    rate_window: timedelta = timedelta(seconds=1)
    hold: Hold | None = None
    """With a hold, the reservation is recorded in its book: :meth:`release` then undoes
    it only while the hold is there (so a release is idempotent, and releases a reservation
    whose admission reply was lost), and ``commit_many`` / ``settle_many`` finish it."""
    cap_reported: bool = False
    """``cap_key`` holds a unit usage the API reports: a missing one is not 0 but unknown
    (``CAP_UNKNOWN``) when the cap is above 0."""

    def __post_init__(self) -> None:
        for name in ("rate_limit", "price", "free_quota", "endpoint_quota"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.cap < NO_CAP:
            raise ValueError("cap must be NO_CAP or not negative")
        if self.monthly_ttl <= timedelta(0) or self.rate_window <= timedelta(0):
            raise ValueError("monthly_ttl and rate_window must be positive")

    def with_hold(self, hold: Hold) -> AdmissionRequest:
        """This request with ``hold``. Every admitted call takes a new hold, so this is on
        the hot path: it copies the fields, already checked, rather than building the
        request anew (``dataclasses.replace`` costs about 5 µs), written out field by field
        (1.5 µs; a loop over the names with a ``getattr`` each took 2.0).
        ``test_with_hold_is_the_same_request_with_the_hold`` fails if a field is missed."""
        made = object.__new__(AdmissionRequest)
        put = object.__setattr__
        put(made, "rate_key", self.rate_key)
        put(made, "rate_limit", self.rate_limit)
        put(made, "cap", self.cap)
        put(made, "cap_key", self.cap_key)
        put(made, "price", self.price)
        put(made, "free_key", self.free_key)
        put(made, "free_quota", self.free_quota)
        put(made, "endpoint_key", self.endpoint_key)
        put(made, "endpoint_quota", self.endpoint_quota)
        put(made, "total_key", self.total_key)
        put(made, "balance_key", self.balance_key)
        put(made, "debited_key", self.debited_key)
        put(made, "monthly_ttl", self.monthly_ttl)
        put(made, "rate_window", self.rate_window)
        put(made, "cap_reported", self.cap_reported)
        put(made, "hold", hold)
        return made


@dataclass(frozen=True, slots=True)
class AdmissionDecision:
    verdict: Verdict
    charge: str = ""
    """For an admitted call: ``free``, ``0`` or the price debited, as a string."""
    debited: int = 0
    """Units taken from the balance (0 unless the call was charged)."""
    rate_limit: int = 0
    rate_remaining: int = 0
    rate_reset_after: float = 0.0
    """Seconds until the rate window ends."""

    @property
    def admitted(self) -> bool:
        return self.verdict is Verdict.ADMITTED


@dataclass(frozen=True, slots=True)
class Held:
    """A hold found in a book (crash recovery): enough to release or finish it."""

    hold: Hold
    request: AdmissionRequest
    """Carries the keys a release writes (the others are empty) and the hold."""
    decision: AdmissionDecision
    """The charge and debit to give back."""
    note: str | None
    """What ``commit_many`` wrote (the call was served); None while only reserved."""


def release_keys(request: AdmissionRequest) -> list[str]:
    """Every key a release may write (on both backends, in this order)."""
    return [
        request.free_key,
        request.endpoint_key,
        request.total_key,
        request.balance_key,
        request.debited_key,
    ]


def hold_record(request: AdmissionRequest, decision: AdmissionDecision) -> str:
    """A hold's record in its book: the keys a release writes, the charge to give back."""
    keys = release_keys(request)
    return json.dumps({"k": keys, "f": int(decision.charge == FREE), "d": decision.debited})


def held_from_record(hold: Hold, record: str, key: Callable[[str], str] = str) -> Held:
    """The :class:`Held` of a stored record (``key`` maps a stored key name back)."""
    data = json.loads(record)
    free_key, endpoint_key, total_key, balance_key, debited_key = (key(k) for k in data["k"])
    debited = int(data["d"])
    charge = FREE if int(data["f"]) else (str(debited) if debited else "0")
    request = AdmissionRequest(
        rate_key="",
        rate_limit=0,
        cap=NO_CAP,
        cap_key="",
        price=debited,
        free_key=free_key,
        free_quota=0,
        endpoint_key=endpoint_key,
        endpoint_quota=0,
        total_key=total_key,
        balance_key=balance_key,
        debited_key=debited_key,
        hold=hold,
    )
    decision = AdmissionDecision(Verdict.ADMITTED, charge=charge, debited=debited)
    note = data.get("s")
    return Held(hold, request, decision, None if note is None else str(note))
