"""Wiring of the endtoend service."""

from __future__ import annotations

import httpx

from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.alerts.proto.client import AlertsClient
from m3o.services.balance.proto.client import BalanceClient
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.emails.proto.client import EmailsClient
from m3o.services.endtoend import tables
from m3o.services.endtoend.alerts import ReportedAlerts
from m3o.services.endtoend.handler import Endtoend
from m3o.services.endtoend.proto.client import SPEC, EndtoendHandler
from m3o.services.endtoend.run import CheckRun, Platform
from m3o.services.endtoend.runner import Runner
from m3o.services.endtoend.settings import settings_from
from m3o.services.publicapi.proto.client import PublicapiClient

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    settings = settings_from(deps.config)
    http = httpx.AsyncClient(timeout=settings.request_timeout.total_seconds())
    platform = Platform(
        customers=deps.clients.get(CustomersClient),
        emails=deps.clients.get(EmailsClient),
        balance=deps.clients.get(BalanceClient),
        publicapi=deps.clients.get(PublicapiClient),
    )
    alerts = ReportedAlerts(deps.clients.get(AlertsClient))
    runner = Runner(
        settings=settings,
        sessions=deps.sessions,
        counters=deps.counters,
        alerts=alerts,
        make_run=lambda run_id: CheckRun(
            run_id=run_id, settings=settings, http=http, platform=platform, sessions=deps.sessions
        ),
    )
    handler: EndtoendHandler = Endtoend(settings=settings, sessions=deps.sessions, runner=runner)
    crons = [Cron("check", settings.interval, runner.run_scheduled)] if settings.scheduled else []
    return ServiceParts(
        handlers=[Handler(SPEC, handler, public=frozenset({"Check"}))],
        crons=crons,
        on_stop=[runner.stop, http.aclose],
    )


definition = ServiceDefinition(
    name="endtoend",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
