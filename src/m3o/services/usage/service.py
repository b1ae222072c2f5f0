"""Wiring of the usage service."""

from __future__ import annotations

from datetime import timedelta

from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.projects.proto.client import ProjectsClient
from m3o.services.publicapi.proto.client import PublicapiClient
from m3o.services.usage import tables
from m3o.services.usage.analytics import Analytics
from m3o.services.usage.consumers import AccountEvents
from m3o.services.usage.erasure import Erasure
from m3o.services.usage.handler import Usage
from m3o.services.usage.maintenance import Maintenance
from m3o.services.usage.proto.client import SPEC
from m3o.services.usage.ranks import Ranks
from m3o.services.usage.recording import RequestRecorder
from m3o.services.usage.tiers import Tiers

__all__ = ["definition"]


async def _build(deps: Dependencies) -> ServiceParts:
    config = deps.config.usage
    tiers = Tiers(sessions=deps.sessions, counters=deps.counters)
    recorder = RequestRecorder(sessions=deps.sessions, counters=deps.counters)
    erasure = Erasure(sessions=deps.sessions, counters=deps.counters, tiers=tiers)
    maintenance = Maintenance(
        sessions=deps.sessions,
        counters=deps.counters,
        recorder=recorder,
        tiers=tiers,
        history_retention=config.history_retention,
    )
    ranks = Ranks(
        sessions=deps.sessions,
        customers=deps.clients.get(CustomersClient),
        publicapi=deps.clients.get(PublicapiClient),
    )
    projects = deps.clients.get(ProjectsClient)
    handler = Usage(
        sessions=deps.sessions,
        counters=deps.counters,
        config=config,
        ranks=ranks,
        analytics=Analytics(sessions=deps.sessions),
        maintenance=maintenance,
        erasure=erasure,
        projects=projects,
    )
    account_events = AccountEvents(tiers=tiers, projects=projects, erasure=erasure)
    return ServiceParts(
        handlers=[Handler(SPEC, handler, public=frozenset({"ListAPIRanks"}))],
        consumers=[recorder.consumer(), *account_events.consumers()],
        crons=[
            Cron("ranks", timedelta(days=1), ranks.recompute_quietly, at_start=True),
            Cron("sweep", timedelta(hours=1), maintenance.run_sweep, at_start=True),
            Cron("retention", timedelta(days=1), maintenance.purge),
        ],
    )


definition = ServiceDefinition(
    name="usage",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
