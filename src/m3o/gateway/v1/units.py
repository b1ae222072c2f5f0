"""The unit usage APIs report (rows, bytes), for usage caps: asked rarely, never waited on.

An API whose catalog entry names a ``usage_endpoint`` is asked, for one tenant at a time,
``{"tenant_id": "micro/<project>"}`` (the reference's ``Admin.Usage`` convention), with
the gateway's own service token, within ``timeout``; it answers ``{"usage":
{"<Service>.<Method>": {"usage": N, "units": "rows"}}}`` (``N`` a number or a numeric
string, as the reference's Go services sent it). An endpoint the answer does not list has
0 units.

What a report says is stored in the counter store (``Quotas.store_units``, under the
admission's ``cap_key``), where the admission compares the cap with it atomically and
every gateway process sees it. This module decides when to ask:

- :meth:`UnitUsage.watch`, on the hot path of every capped call: nothing but a dict
  lookup, unless the (API, project) was last asked ``ttl`` ago or more; then one report is
  asked in the background (one at a time per (API, project)) and every capped endpoint
  called under it is stored.
- :meth:`UnitUsage.load`, when the admission found no stored value (``CAP_UNKNOWN``): the
  last report this process had (even an old one), else a report asked now (joining one
  under way). False when none can be had: the call is refused (503), since a cap that
  cannot be checked is not admitted past. A report that failed less than ``ttl`` ago is
  not asked again, so callers of a reporter that is down are refused at once.

A report that fails (unreachable, slow, an error, an answer that is not a report) changes
nothing stored: the last known value stays, never 0. It is logged
(``v1.unit_usage_failed``) and reported to operators (category ``usage_report``) at most
once per API per :data:`ALERT_INTERVAL` in each process.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from m3o.gateway.context import new_request_id
from m3o.gateway.v1.forwarders import Forwarders
from m3o.gateway.v1.metering import NAMESPACE
from m3o.gateway.v1.ports import Alerts, Quotas
from m3o.gateway.v1.targets import Target, Targets
from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import TokenSource

__all__ = [
    "ALERT_CATEGORY",
    "ALERT_INTERVAL",
    "MAX_TRACKED",
    "ReportError",
    "UnitUsage",
    "parse_report",
]

_log = get_logger(__name__)

ALERT_CATEGORY = "usage_report"
ALERT_INTERVAL = 300.0
"""Seconds between two alerts about one API's failing usage endpoint (per process)."""
MAX_TRACKED = 100_000
"""(API, project) pairs whose reports a process keeps; past it, it starts over."""


class ReportError(ValueError):
    """An answer of a usage endpoint that is not a report."""


def parse_report(answer: bytes) -> dict[str, int]:
    """Endpoint -> units of a usage endpoint's JSON answer; raises :class:`ReportError`."""
    try:
        data = orjson.loads(answer)
    except orjson.JSONDecodeError:
        raise ReportError("not JSON") from None
    usage = data.get("usage", {}) if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        raise ReportError("no usage object")
    report: dict[str, int] = {}
    for endpoint, entry in usage.items():
        value = entry.get("usage", 0) if isinstance(entry, dict) else None
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ReportError(f"usage of {endpoint} is not a whole number >= 0")
        report[str(endpoint).lower()] = value
    return report


@dataclass
class _Tenant:
    """What a process knows of one (API, project)."""

    keys: dict[str, str] = field(default_factory=dict)
    """Capped endpoint called (lower-case) -> where its units are stored."""
    asked: float = -math.inf
    """When a report was last asked (monotonic seconds)."""
    report: dict[str, int] | None = None
    """The last report had (lower-case endpoint -> units); None before any."""
    asking: asyncio.Task[dict[str, int] | None] | None = None


class UnitUsage:
    def __init__(
        self,
        *,
        targets: Targets,
        forwarders: Forwarders,
        quotas: Quotas,
        credentials: TokenSource | None,
        alerts: Alerts | None = None,
        ttl: float = 5.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._targets = targets
        self._forwarders = forwarders
        self._quotas = quotas
        self._credentials = credentials
        self._alerts = alerts
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._tenants: dict[tuple[str, str], _Tenant] = {}
        self._alerted: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def watch(self, target: Target, project: str, key: str) -> None:
        """A capped call of ``project`` to ``target``, its units stored under ``key``:
        ask for a fresh report in the background if the last was asked ``ttl`` ago."""
        tenant = self._tenant(target.api, project)
        tenant.keys[target.endpoint.lower()] = key
        if tenant.asking is None and self._clock() - tenant.asked >= self._ttl:
            self._ask(tenant, target, project)

    async def load(self, target: Target, project: str, key: str) -> bool:
        """Store a value under ``key`` (none is stored): the last report had, else a
        report asked now. False when there is none to be had."""
        tenant = self._tenant(target.api, project)
        endpoint = target.endpoint.lower()
        tenant.keys[endpoint] = key
        report = tenant.report
        if report is None:
            if tenant.asking is None and self._clock() - tenant.asked >= self._ttl:
                self._ask(tenant, target, project)
            if tenant.asking is not None:
                report = await asyncio.shield(tenant.asking)
        if report is None:
            _log.warning("v1.unit_usage_unknown", api=target.api, project=project)
            return False
        try:
            await self._quotas.store_units(key, report.get(endpoint, 0))
        except M3OError as exc:
            _log.error("v1.unit_usage_store_failed", api=target.api, error=exc.detail)
            return False
        return True

    async def close(self) -> None:
        """Stop asking (shut-down)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def _tenant(self, api: str, project: str) -> _Tenant:
        found = self._tenants.get((api, project))
        if found is None:
            if len(self._tenants) >= MAX_TRACKED:
                self._tenants = {k: t for k, t in self._tenants.items() if t.asking is not None}
            found = self._tenants[(api, project)] = _Tenant()
        return found

    def _ask(self, tenant: _Tenant, target: Target, project: str) -> None:
        tenant.asked = self._clock()
        task = asyncio.get_running_loop().create_task(self._refresh(tenant, target, project))
        tenant.asking = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(
        self, tenant: _Tenant, target: Target, project: str
    ) -> dict[str, int] | None:
        """Ask for a report and store it for every capped endpoint called; the report,
        None when it failed (what is stored stays)."""
        try:
            report = await self._report(target, project)
        except Exception as exc:  # noqa: BLE001 - any failure of a reporter keeps the last value
            self._failed(target, project, exc)
            return None
        finally:
            tenant.asking = None
        tenant.report = report
        for endpoint, key in list(tenant.keys.items()):
            try:
                await self._quotas.store_units(key, report.get(endpoint, 0))
            except M3OError as exc:
                _log.error("v1.unit_usage_store_failed", api=target.api, error=exc.detail)
                break
        return report

    async def _report(self, target: Target, project: str) -> dict[str, int]:
        usage = self._targets.usage_target(target.entry)
        codec = self._forwarders.codec(usage)
        request = codec.from_json({"tenant_id": f"{NAMESPACE}/{project}"})
        metadata = {"x-request-id": new_request_id(None)}
        if self._credentials is not None:
            metadata["authorization"] = f"Bearer {await self._credentials.token()}"
        answer = await self._forwarders.unary(usage, request, metadata, self._timeout)
        return parse_report(codec.to_json(answer))

    def _failed(self, target: Target, project: str, exc: Exception) -> None:
        error = exc.detail if isinstance(exc, M3OError) else (str(exc) or type(exc).__name__)
        _log.warning("v1.unit_usage_failed", api=target.api, project=project, error=error)
        alerts = self._alerts
        now = self._clock()
        if alerts is None or now - self._alerted.get(target.api, -math.inf) < ALERT_INTERVAL:
            return
        self._alerted[target.api] = now
        metadata = {"error": error, "usage_endpoint": target.entry.usage_endpoint}

        async def report() -> None:
            try:
                await alerts.report(ALERT_CATEGORY, f"/v1/{target.api}", project, metadata)
            except Exception as failure:  # noqa: BLE001 - an alert must not fail anything
                _log.warning("v1.alert_failed", error=str(failure))

        task = asyncio.get_running_loop().create_task(report())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
