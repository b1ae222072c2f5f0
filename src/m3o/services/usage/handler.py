"""The usage service: customers' usage, the API ranking, custom analytics events.

Usage is counted per project (a customer's default project has the customer's id). A
customer reads its own id and the projects it is a member of or pays for (projects.Read);
admins and services read anyone.

Monthly numbers are the live counters the gateway's admission keeps, never below what the
history proves (a counter store that lost a counter still reports the persisted calls).
Daily series come from the history, today included. A counter store that cannot be reached
makes the calls that need it Unavailable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import UTC, date, datetime, time
from typing import TypeVar

from m3o.runtime.auth import CallContext, is_customer, verify_admin, verify_self_or_admin
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.config.sections import UsageConfig
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc.calls import Calls
from m3o.runtime.store import SessionFactory
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.projects.proto.client import ProjectsService
from m3o.services.usage import history
from m3o.services.usage.analytics import Analytics
from m3o.services.usage.counters import (
    TOTAL,
    TOTAL_FREE,
    cap_for,
    free_quota,
    monthly_key,
    tier_of,
)
from m3o.services.usage.erasure import Erasure
from m3o.services.usage.history import FREE_PATH, is_api_path, is_endpoint_path
from m3o.services.usage.maintenance import Maintenance
from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.ranks import Ranks

__all__ = ["MAX_ENDPOINTS", "Usage"]

_log = get_logger(__name__)
_calls = Calls("usage.projects_failed")

MAX_ENDPOINTS = 1000
"""Counter names one ReadMonthly may ask for."""
MAX_ID_LENGTH = 255

T = TypeVar("T")


class Usage:
    """Implements ``usage.Usage`` (see ``proto/usage.proto``)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        counters: CounterStore,
        config: UsageConfig,
        ranks: Ranks,
        analytics: Analytics,
        maintenance: Maintenance,
        erasure: Erasure,
        projects: ProjectsService,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._counters = counters
        self._config = config
        self._ranks = ranks
        self._analytics = analytics
        self._maintenance = maintenance
        self._erasure = erasure
        self._projects = projects
        self._clock = clock

    async def read(self, request: pb.ReadRequest, ctx: CallContext) -> pb.ReadResponse:
        customer_id = await self._readable(ctx, request.customer_id)
        async with self._sessions() as session:
            rows = await history.series(session, customer_id)
        response = pb.ReadResponse()
        for row in rows:
            wanted = is_api_path(row.path) or (request.detail and is_endpoint_path(row.path))
            if not wanted:
                continue
            series = response.usage[row.path]
            series.api_name = row.path
            series.records.append(pb.UsageRecord(date=_unix(row.day), requests=row.requests))
        now = self._clock()
        tier = await self._counted(ctx, tier_of(self._counters, customer_id))
        used = (await self._monthly(ctx, customer_id, [TOTAL_FREE], now))[TOTAL_FREE]
        response.quota_remaining = max(0, free_quota(self._config, tier) - used)
        return response

    async def read_monthly_total(
        self, request: pb.ReadMonthlyTotalRequest, ctx: CallContext
    ) -> pb.ReadMonthlyTotalResponse:
        customer_id = await self._readable(ctx, request.customer_id)
        now = self._clock()
        names = [TOTAL]
        if request.detail:
            names += await self._endpoints_this_month(customer_id, now)
        counts = await self._monthly(ctx, customer_id, names, now)
        response = pb.ReadMonthlyTotalResponse(requests=counts.pop(TOTAL))
        response.endpoint_requests.update({name: n for name, n in counts.items() if n})
        return response

    async def read_monthly(
        self, request: pb.ReadMonthlyRequest, ctx: CallContext
    ) -> pb.ReadMonthlyResponse:
        verify_admin(ctx)
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer_id")
        if len(request.endpoints) > MAX_ENDPOINTS:
            raise BadRequest(ctx.endpoint, f"At most {MAX_ENDPOINTS} endpoints")
        names = list(dict.fromkeys(request.endpoints))
        for name in names:
            if name not in (TOTAL, TOTAL_FREE) and not is_endpoint_path(name):
                raise BadRequest(
                    ctx.endpoint,
                    f"Invalid endpoint {name!r}: expected <api>$<Endpoint>, total or totalfree",
                )
        now = self._clock()
        tier = await self._counted(ctx, tier_of(self._counters, customer_id))
        counts = await self._monthly(ctx, customer_id, names, now)
        response = pb.ReadMonthlyResponse(requests=counts)
        if TOTAL_FREE in counts:
            response.quotas[TOTAL_FREE] = free_quota(self._config, tier)
        for name in names:
            if not is_endpoint_path(name):
                continue
            api, _, endpoint = name.partition("$")
            cap = cap_for(self._config, tier, api, endpoint)
            if cap != NO_CAP:
                response.caps[name] = cap
                # Unit usage is the endpoint's monthly call count until APIs report their own.
                response.cap_usage[name] = counts[name]
        return response

    async def list_api_ranks(
        self, request: pb.ListAPIRanksRequest, ctx: CallContext
    ) -> pb.ListAPIRanksResponse:
        return await self._ranks.latest()

    async def save_event(
        self, request: pb.SaveEventRequest, ctx: CallContext
    ) -> pb.SaveEventResponse:
        return await self._analytics.save_event(request, ctx)

    async def list_events(
        self, request: pb.ListEventsRequest, ctx: CallContext
    ) -> pb.ListEventsResponse:
        return await self._analytics.list_events(request, ctx)

    async def sweep(self, request: pb.SweepRequest, ctx: CallContext) -> pb.SweepResponse:
        verify_admin(ctx)
        result = await self._counted(ctx, self._maintenance.sweep())
        return pb.SweepResponse(persisted=result.persisted, restored=result.restored)

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_admin(ctx)
        customer_id = request.id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing id")
        await self._counted(ctx, self._erasure.erase(customer_id))
        return pb.DeleteCustomerResponse()

    # -- shared steps ------------------------------------------------------------------------

    async def _readable(self, ctx: CallContext, customer_id: str) -> str:
        """The customer (project) a read names, the caller when empty, if the caller may
        read it: itself, a project it belongs to or pays for; admins and services anyone."""
        account = ctx.account
        if account is None:
            raise Unauthorized(ctx.endpoint, "Unauthorized")
        customer_id = customer_id.strip() or account.id
        if len(customer_id) > MAX_ID_LENGTH:
            raise BadRequest(ctx.endpoint, f"customer_id is longer than {MAX_ID_LENGTH} characters")
        if customer_id == account.id or not is_customer(account):
            verify_self_or_admin(ctx, customer_id)
            return customer_id
        try:
            found = await self._projects.read(projects_pb.ReadRequest(id=customer_id))
        except NotFound:
            raise Forbidden(ctx.endpoint, "Forbidden") from None
        except M3OError as exc:
            raise _calls.failure(ctx, "projects.read", exc) from None
        project = found.project
        if account.id != project.billing_account and all(
            member.id != account.id for member in project.members
        ):
            raise Forbidden(ctx.endpoint, "Forbidden")
        return customer_id

    async def _monthly(
        self, ctx: CallContext, customer_id: str, names: Sequence[str], now: datetime
    ) -> dict[str, int]:
        """This month's count of each of ``names``: the live counter, or what the history
        holds when that is more."""
        keys = [monthly_key(customer_id, name, now) for name in names]
        live = await self._counted(ctx, self._counters.get_many(keys))
        persisted = await self._persisted_this_month(customer_id, now)
        return {
            name: max(value, persisted.get(name, 0))
            for name, value in zip(names, live, strict=True)
        }

    async def _persisted_this_month(self, customer_id: str, now: datetime) -> dict[str, int]:
        today = now.astimezone(UTC).date()
        async with self._sessions() as session:
            rows = await history.month_totals(session, today.replace(day=1), today, customer_id)
        found: dict[str, int] = {TOTAL: 0, TOTAL_FREE: 0}
        for row in rows:
            if is_api_path(row.path):
                found[TOTAL] += row.requests
            elif row.path == FREE_PATH:
                found[TOTAL_FREE] += row.requests
            else:
                found[row.path] = row.requests
        return found

    async def _endpoints_this_month(self, customer_id: str, now: datetime) -> list[str]:
        persisted = await self._persisted_this_month(customer_id, now)
        return sorted(name for name in persisted if is_endpoint_path(name))

    async def _counted(self, ctx: CallContext, pending: Awaitable[T]) -> T:
        """Await a counter store operation; an unreachable store is Unavailable."""
        try:
            return await pending
        except Unavailable as exc:
            _log.warning("usage.counters_unavailable", endpoint=ctx.endpoint, detail=exc.detail)
            raise Unavailable(ctx.endpoint, "Usage counters are unavailable") from None


def _unix(day: date) -> int:
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp())
