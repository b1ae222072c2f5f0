"""The checks every call passes, in the order of the spec, before it is forwarded.

1. the key is not blocked: else Forbidden ``v1.blocked`` ``Request blocked. <message>``;
2. a scope of the key names the API (or is ``*``): else ``Request blocked. Insufficient
   privileges``;
3. one atomic admission in the counter store (rate limit, usage cap, fair-use quota,
   endpoint quota, balance; see :mod:`m3o.runtime.counters.admission`), batched with the
   admissions of concurrent calls. A hot balance that is not loaded yet is loaded by the
   balance service and the call admitted once more. When the API reports its unit usage
   (:mod:`m3o.gateway.v1.units`), a capped call asks for a fresh report in the background
   at most once per TTL; when no report was ever stored, one is had first and the call
   admitted once more, and a call whose units cannot be had at all is refused with 503
   (a cap that cannot be checked is not admitted past).

When the counter store cannot be reached, priced calls get 503; free calls too, unless
``fail_open_free`` lets them through uncounted (charged ``free``). The tier of each
customer is kept for ``tier_ttl`` so that the common case costs the admission only (read
once at a time, and renewed in the background while in use:
:class:`~m3o.gateway.v1.lookups.CachedLookups`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from m3o.gateway.v1.batching import Admissions
from m3o.gateway.v1.holds import Holds
from m3o.gateway.v1.lookups import CachedLookups
from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.ports import ApiKey, BalanceLoader, PlannedCall, Quotas
from m3o.gateway.v1.targets import Target
from m3o.gateway.v1.units import UnitUsage
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters.admission import FREE, AdmissionDecision, AdmissionRequest, Hold, Verdict
from m3o.runtime.errors import Forbidden, M3OError, TooManyRequests, Unavailable
from m3o.runtime.events import Envelope
from m3o.runtime.logging import get_logger

__all__ = [
    "BLOCKED_ID",
    "CAP_EXCEEDED",
    "INSUFFICIENT_CREDIT",
    "INSUFFICIENT_PRIVILEGES",
    "TOO_MANY_REQUESTS",
    "UNAVAILABLE",
    "Admission",
    "Gate",
    "Refused",
    "blocked",
    "check_key",
    "rate_headers",
    "raw_rate_headers",
]

_log = get_logger(__name__)

MAX_CACHED_REQUESTS = 10_000
MAX_CACHED_TIERS = 100_000
BLOCKED_ID = "v1.blocked"
INSUFFICIENT_PRIVILEGES = "Insufficient privileges"
CAP_EXCEEDED = "Usage cap exceeded"
INSUFFICIENT_CREDIT = "Insufficient credit"
TOO_MANY_REQUESTS = "Too Many Requests"
UNAVAILABLE = "Service unavailable, please try again"


def blocked(reason: str) -> Forbidden:
    return Forbidden(BLOCKED_ID, f"Request blocked. {reason}")


def check_key(key: ApiKey, api: str) -> None:
    """Steps 1 and 2: the key's status, then its scopes."""
    if key.blocked:
        raise blocked(key.status_message)
    if not key.permits(api):
        raise blocked(INSUFFICIENT_PRIVILEGES)


_NAMES = {
    b"ratelimit-limit": "RateLimit-Limit",
    b"ratelimit-remaining": "RateLimit-Remaining",
    b"ratelimit-reset": "RateLimit-Reset",
    b"x-m3o-price": "X-M3O-Price",
}


def raw_rate_headers(decision: AdmissionDecision) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (whole seconds) of a decision, as
    an ASGI answer sends them (lower-case names, bytes): every served call sends them, so
    they are built straight into that form."""
    return [
        (b"ratelimit-limit", b"%d" % decision.rate_limit),
        (b"ratelimit-remaining", b"%d" % decision.rate_remaining),
        (b"ratelimit-reset", b"%d" % math.ceil(decision.rate_reset_after)),
    ]


def rate_headers(decision: AdmissionDecision) -> dict[str, str]:
    """:func:`raw_rate_headers` by their names."""
    return {_NAMES[name]: value.decode() for name, value in raw_rate_headers(decision)}


class Refused(Exception):
    """A call admission turned down: the error to answer and the headers to send."""

    def __init__(self, error: M3OError, headers: dict[str, str]) -> None:
        super().__init__(error.detail)
        self.error = error
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted call: what was reserved, to release it if the call fails."""

    request: AdmissionRequest | None
    """None when admitted without the counter store (fail-open): nothing to release."""
    decision: AdmissionDecision

    @property
    def charge(self) -> str:
        """``free``, ``0`` or the price debited."""
        return self.decision.charge

    @property
    def headers(self) -> dict[str, str]:
        """:attr:`raw_headers` by their names."""
        return {_NAMES[name]: value.decode() for name, value in self.raw_headers}

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """What a charged answer tells: the rate limit (admitted through the counter store)
        and ``X-M3O-Price``, as an ASGI answer sends them."""
        price = (b"x-m3o-price", self.charge.encode())
        if self.request is None:
            return [price]
        return [*raw_rate_headers(self.decision), price]


def _refusal(decision: AdmissionDecision) -> Refused:
    headers = rate_headers(decision)
    if decision.verdict is Verdict.RATE_LIMITED:
        headers["Retry-After"] = str(max(1, math.ceil(decision.rate_reset_after)))
        return Refused(TooManyRequests(BLOCKED_ID, TOO_MANY_REQUESTS), headers)
    if decision.verdict is Verdict.CAP_EXCEEDED:
        return Refused(blocked(CAP_EXCEEDED), headers)
    if decision.verdict is Verdict.INSUFFICIENT_CREDIT:
        return Refused(blocked(INSUFFICIENT_CREDIT), headers)
    return Refused(Unavailable(ERROR_ID, UNAVAILABLE), {})


class Gate:
    def __init__(
        self,
        batcher: Admissions,
        quotas: Quotas,
        balances: BalanceLoader,
        *,
        fail_open_free: bool = False,
        tier_ttl: timedelta = timedelta(seconds=1),
        now: Clock = utc_now,
        clock: Callable[[], float] = time.monotonic,
        holds: Holds | None = None,
        units: UnitUsage | None = None,
    ) -> None:
        self._batcher = batcher
        self._units = units
        self._holds = holds
        self._quotas = quotas
        self._balances = balances
        self._fail_open_free = fail_open_free
        self._now = now
        self._tiers: CachedLookups[str, str, str] = CachedLookups(
            quotas.tier, ttl=tier_ttl.total_seconds(), max_entries=MAX_CACHED_TIERS, clock=clock
        )
        self._requests: dict[tuple[PlannedCall, str, int, int], AdmissionRequest] = {}

    def plan(self, key: ApiKey, target: Target) -> PlannedCall:
        return PlannedCall(
            project_id=key.owner,
            customer_id=key.billing_account or key.owner,
            api=target.api,
            endpoint=target.endpoint,
            price=target.entry.price(target.endpoint),
            endpoint_quota=target.entry.quota(target.endpoint),
            reports_units=bool(target.entry.usage_endpoint),
        )

    async def admit(self, call: PlannedCall, target: Target) -> Admission:
        """Step 3 for one call (planned by :meth:`plan`); :class:`Refused` when it may not
        go ahead."""
        request: AdmissionRequest | None = None
        try:
            tier = await self._tiers.get(call.customer_id, call.customer_id)
            request = self._request(call, tier)
            if self._holds is not None:
                request = request.with_hold(self._holds.new())
            units = self._units if request.cap_reported else None
            if units is not None:
                units.watch(target, call.project_id, request.cap_key)
            decision = await self._batcher.admit(request)
            if (
                decision.verdict is Verdict.CAP_UNKNOWN
                and units is not None
                and await units.load(target, call.project_id, request.cap_key)
            ):
                decision = await self._batcher.admit(request)
            if decision.verdict is Verdict.BALANCE_UNKNOWN:
                await self._load_balance(call.customer_id)
                decision = await self._batcher.admit(request)
        except Unavailable as exc:
            self._unknown(request)
            if call.price == 0 and self._fail_open_free:
                _log.warning("v1.admitted_open", reason=exc.detail, api=call.api)
                return Admission(None, AdmissionDecision(Verdict.ADMITTED, charge=FREE))
            raise Refused(Unavailable(ERROR_ID, UNAVAILABLE), {}) from None
        except BaseException:
            # Cancelled too (the client went away): the batch may still reserve for it.
            self._unknown(request)
            raise
        if not decision.admitted:
            if request.hold is not None and self._holds is not None:
                self._holds.refused(request.hold)
            raise _refusal(decision)
        return Admission(request, decision)

    def _unknown(self, request: AdmissionRequest | None) -> None:
        """An admission that failed may still have reserved (its reply was lost): its
        hold, if written, is released once the store answers."""
        if request is not None and self._holds is not None:
            self._holds.release_unknown(request)

    @property
    def commits_publish(self) -> bool:
        """Whether a commit (:meth:`commit_soon`) publishes the call's event itself
        (:attr:`Holds.publishes`)."""
        return self._holds is not None and self._holds.publishes

    def commit_soon(self, hold: Hold, envelope: Envelope) -> asyncio.Future[bool]:
        """Mark an answered call's hold with its event, in the background; the future is
        False when the hold is gone (see :meth:`Holds.commit_soon`)."""
        if self._holds is None:
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            done.set_result(True)
            return done
        return self._holds.commit_soon(hold, envelope)

    def _request(self, call: PlannedCall, tier: str) -> AdmissionRequest:
        """The admission of ``call``; the same call in the same month on the same tier is
        the same request, so it is built once (key names are not free to build)."""
        now = self._now()
        key = (call, tier, now.year, now.month)
        found = self._requests.get(key)
        if found is None:
            found = self._quotas.request(call, tier, now)
            if len(self._requests) >= MAX_CACHED_REQUESTS:
                self._requests.clear()
            self._requests[key] = found
        return found

    async def _load_balance(self, customer_id: str) -> None:
        try:
            await self._balances.load(customer_id)
        except M3OError as exc:
            _log.error("v1.balance_load_failed", customer_id=customer_id, error=exc.detail)
            raise Unavailable(ERROR_ID, UNAVAILABLE) from None

    async def release(self, admission: Admission) -> None:
        """Undo an admitted call's reservation (the upstream failed). With holds, a release
        the store cannot take now is retried until it can; without, a failure is logged."""
        if admission.request is None:
            return
        if self._holds is not None:
            await self._holds.release(admission.request, admission.decision)
            return
        try:
            await self._batcher.release(admission.request, admission.decision)
        except M3OError as exc:
            _log.error(
                "v1.release_failed",
                charge=admission.charge,
                rate_window=admission.request.rate_key,
                error=exc.detail,
            )
