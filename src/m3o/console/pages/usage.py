"""The usage page: what the signed-in customer called, per day and this month.

- ``GET /console/usage``: the calls per day of each API over the last 30 days (today, UTC,
  the last), drawn by uPlot (``static/usage.js`` reads them from the JSON block
  ``#usage-data``) and listed in a table with the same numbers, which is what readers
  without JavaScript or a screen get; this month's calls per API and endpoint; the free
  calls left this month on the customer's tier and, for endpoints the catalog gives a free
  quota of their own, the free calls left on each. A person who never called anything gets
  a link to the keys page instead.

  Calls: ``Usage.Read`` (with ``detail``: the daily series and ``quota_remaining``),
  ``Usage.ReadMonthlyTotal`` (with ``detail``: each endpoint called this month),
  ``Explore.Pricing`` (the per-endpoint free quotas; the page is shown without them when
  the catalog cannot be reached) and ``V1.ListKeys`` (the projects the person's keys belong
  to, offered in a "Project" choice when there is more than one).

- ``?project=<id>`` shows a project's usage instead of the person's own (default) one. The
  usage service decides: a project the person neither belongs to nor pays for is refused
  (403) and shown as an error beside the choice, never its numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.web import Console, Session
from m3o.runtime.errors import M3OError
from m3o.services.explore.proto import explore_pb2
from m3o.services.usage.proto import usage_pb2
from m3o.services.v1.proto import v1_pb2

__all__ = ["DAYS", "routes"]

DAYS = 30
"""How many days the chart and its table cover, today (UTC) the last."""

_DAY = 24 * 3600
_MAX_PROJECT = 200
_REFUSED = (400, 403, 404)
"""Refusals of a named project shown beside the project choice rather than as a page."""


@dataclass(frozen=True, slots=True)
class ApiSeries:
    """One API's calls per day over the window."""

    name: str
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class EndpointMonth:
    """One endpoint's calls this month and, when the catalog gives it a free quota of its
    own, the free calls left on it (None otherwise)."""

    api: str
    endpoint: str
    calls: int
    quota: int
    free_left: int | None


def window(now: float) -> list[int]:
    """The starts (unix seconds, UTC) of the ``DAYS`` days ending with ``now``'s day."""
    today = int(now) - int(now) % _DAY
    return [today - _DAY * back for back in range(DAYS - 1, -1, -1)]


def daily_series(usage: Mapping[str, usage_pb2.UsageHistory], days: list[int]) -> list[ApiSeries]:
    """Each API's count per day of ``days`` (0 for a day without calls), by name; APIs
    without a call in the window are left out, and so are the endpoints' series."""
    position = {day: index for index, day in enumerate(days)}
    series: list[ApiSeries] = []
    for name in sorted(usage):
        if "$" in name:
            continue
        counts = [0] * len(days)
        for record in usage[name].records:
            index = position.get(record.date - record.date % _DAY)
            if index is not None:
                counts[index] += record.requests
        if any(counts):
            series.append(ApiSeries(name, counts))
    return series


def quotas_by_endpoint(pricing: explore_pb2.PricingResponse | None) -> dict[tuple[str, str], int]:
    """The catalog's free calls a month of each ``(api, endpoint)``, lower-cased (the
    catalog's keys match case-insensitively), where it gives one."""
    if pricing is None:
        return {}
    return {
        (item.name.lower(), endpoint.lower()): quota
        for item in pricing.prices
        for endpoint, quota in item.quotas.items()
        if quota > 0
    }


def endpoints_this_month(
    counts: Mapping[str, int], quotas: Mapping[tuple[str, str], int]
) -> list[EndpointMonth]:
    """This month's ``<api>$<Endpoint>`` counts as rows, by API then endpoint. The free
    calls left on an endpoint with a quota of its own are that quota less its calls: the
    gateway counts every admitted call of the endpoint against it."""
    rows: list[EndpointMonth] = []
    for name in sorted(counts):
        api, _, endpoint = name.partition("$")
        if not api or not endpoint:
            continue
        calls = int(counts[name])
        quota = quotas.get((api.lower(), endpoint.lower()), 0)
        left = max(0, quota - calls) if quota else None
        rows.append(EndpointMonth(api, endpoint, calls, quota, left))
    return rows


def chart_data(days: list[int], series: list[ApiSeries]) -> dict[str, Any]:
    """What ``static/usage.js`` draws: the days (unix seconds) and one series per API."""
    return {
        "days": days,
        "series": [{"name": one.name, "counts": one.counts} for one in series],
    }


def routes(console: Console) -> list[BaseRoute]:
    """``/console/usage``."""

    async def pricing(metadata: dict[str, str]) -> explore_pb2.PricingResponse | None:
        # Only the per-endpoint quotas come from here: the page does without them.
        try:
            return await console.clients.explore.pricing(
                explore_pb2.PricingRequest(), metadata=metadata
            )
        except M3OError:
            return None

    async def projects(metadata: dict[str, str], session: Session) -> list[str]:
        """The person's own id first, then the other projects their keys belong to."""
        try:
            keys = await console.clients.v1.list_keys(v1_pb2.ListRequest(), metadata=metadata)
        except M3OError:
            return [session.account_id]
        others = sorted({key.project_id for key in keys.api_keys} - {session.account_id, ""})
        return [session.account_id, *others]

    async def usage(request: Request) -> Response:
        session = await console.require(request)
        metadata = console.metadata(request, session)
        project = request.query_params.get("project", "").strip()
        if project == session.account_id:
            project = ""
        context: dict[str, Any] = {
            "title": "Usage",
            "project": project,
            "projects": await projects(metadata, session),
            "error": "",
        }
        if len(project) > _MAX_PROJECT:
            context["error"] = "That is not a project id."
            return console.render(request, "usage/usage.html", context, status=400)
        try:
            read, monthly, prices = await asyncio.gather(
                console.clients.usage.read(
                    usage_pb2.ReadRequest(customer_id=project, detail=True), metadata=metadata
                ),
                console.clients.usage.read_monthly_total(
                    usage_pb2.ReadMonthlyTotalRequest(customer_id=project, detail=True),
                    metadata=metadata,
                ),
                pricing(metadata),
            )
        except M3OError as exc:
            if not project or exc.code not in _REFUSED:
                raise
            context["error"] = (
                "You can see the usage of your own projects only."
                if exc.code == 403
                else exc.detail
            )
            return console.render(request, "usage/usage.html", context, status=exc.code)
        days = window(time.time())
        series = daily_series(read.usage, days)
        endpoints = endpoints_this_month(monthly.endpoint_requests, quotas_by_endpoint(prices))
        context.update(
            {
                "days": days,
                "series": series,
                "chart": chart_data(days, series),
                "day_totals": [sum(one.counts[i] for one in series) for i in range(len(days))],
                "month_total": monthly.requests,
                "endpoints": endpoints,
                "quota_remaining": read.quota_remaining,
                "called": bool(read.usage) or monthly.requests > 0,
            }
        )
        return console.render(request, "usage/usage.html", context)

    return [console.route("/usage", usage)]
