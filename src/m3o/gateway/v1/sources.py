"""The platform's implementations of the gateway's ports: the sanctioned exception.

The gateway's hot path reads what usage, balance, v1 and publicapi export for it (see
DESIGN.md, "Layout"): this is the one module that imports them. Everything else in
``m3o.gateway.v1`` depends on the small interfaces of :mod:`~m3o.gateway.v1.ports`.

- :class:`V1KeyDirectory`: a key's record from the counter-store mirror the v1 service
  keeps, or from ``v1.ResolveKey`` when the mirror has none (keys imported from M3O found
  by their plain SHA-256);
- :class:`PlatformQuotas`: tiers (usage), rate limits (config ``v1.rate-limits``), free
  quotas and caps (config ``usage``), every counter name of an admission and the stored
  unit usage APIs report;
- :func:`platform_dependencies`: all of it over one transport, with the catalog view.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from m3o.gateway.health import NotReady, ReadinessCheck
from m3o.gateway.v1.balances import BalanceCurrent
from m3o.gateway.v1.ports import Alerts, EventSpill, PlannedCall, ServedCharges, ServedHolds
from m3o.gateway.v1.routes import V1Dependencies
from m3o.gateway.v1.targets import LocalServices
from m3o.gateway.v1.tokens import GrantTokens
from m3o.runtime.config import Config
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import AdmissionRequest
from m3o.runtime.errors import NotFound
from m3o.runtime.events import Publisher
from m3o.runtime.rpc import TokenSource, Transport
from m3o.runtime.store import SessionFactory
from m3o.services.auth.proto.client import AuthClient
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.balance.proto.client import BalanceClient
from m3o.services.publicapi.proto.client import PublicapiClient
from m3o.services.publicapi.view import FIRST_LOAD_WAIT, CatalogView
from m3o.services.usage.counters import (
    DEFAULT_TIER,
    MONTHLY_TTL,
    TOTAL,
    TOTAL_FREE,
    UNITS_TTL,
    cap_for,
    endpoint_name,
    free_quota,
    monthly_key,
    tier_of,
    unit_key,
)
from m3o.services.v1 import (
    RATE_WINDOW,
    KeyRecord,
    hash_key,
    is_legacy_form,
    is_well_formed,
    legacy_hash,
    rate_key,
)
from m3o.services.v1 import read_key_record as read_mirrored
from m3o.services.v1.proto import v1_pb2 as v1_pb
from m3o.services.v1.proto.client import V1Client, V1Service
from m3o.services.v1.settings import settings_from

__all__ = ["PlatformQuotas", "PlatformSources", "V1KeyDirectory", "platform_dependencies"]

Hook = Callable[[], Awaitable[None]]


class V1KeyDirectory:
    """:class:`~m3o.gateway.v1.ports.KeyDirectory` over the v1 service's key records."""

    def __init__(self, counters: CounterStore, v1: V1Service, pepper: bytes) -> None:
        self._counters = counters
        self._v1 = v1
        self._pepper = pepper

    async def find(self, api_key: str) -> KeyRecord | None:
        """Our keys by their keyed hash; a key of M3O's shape (imported, not yet rolled)
        by its plain SHA-256, as M3O stored it. Any other string cannot be a key."""
        if is_well_formed(api_key):
            key_hash, legacy = hash_key(api_key, self._pepper), False
        elif is_legacy_form(api_key):
            key_hash, legacy = legacy_hash(api_key), True
        else:
            return None
        record = await read_mirrored(self._counters, key_hash)
        if record is None:
            try:
                response = await self._v1.resolve_key(v1_pb.ResolveKeyRequest(hash=key_hash))
            except NotFound:
                return None
            record = KeyRecord.from_proto(response.key)
        # A hash answers only for a key of its own kind.
        return record if record.legacy is legacy else None


class PlatformQuotas:
    """:class:`~m3o.gateway.v1.ports.Quotas` as usage, balance and v1 define them."""

    def __init__(self, counters: CounterStore, config: Config) -> None:
        self._counters = counters
        self._config = config
        limits = config.v1.rate_limits
        self._rate_limits = dict(limits)
        self._default_rate = limits.get(DEFAULT_TIER, 0)

    async def tier(self, customer_id: str) -> str:
        return await tier_of(self._counters, customer_id)

    def request(self, call: PlannedCall, tier: str, now: datetime) -> AdmissionRequest:
        project = call.project_id
        name = endpoint_name(call.api, call.endpoint)
        endpoint_key = monthly_key(project, name, now)
        cap = cap_for(self._config, tier, call.api, call.endpoint)
        # A cap of 0 needs no report: the endpoint is not available on the tier.
        reported = call.reports_units and cap > 0
        return AdmissionRequest(
            rate_key=rate_key(project),
            rate_limit=self._rate_limits.get(tier, self._default_rate),
            cap=cap,
            cap_key=unit_key(project, name) if reported else endpoint_key,
            cap_reported=reported,
            price=call.price,
            free_key=monthly_key(project, TOTAL_FREE, now),
            free_quota=free_quota(self._config, tier),
            endpoint_key=endpoint_key,
            endpoint_quota=call.endpoint_quota,
            total_key=monthly_key(project, TOTAL, now),
            balance_key=hot_key(call.customer_id),
            debited_key=debited_key(call.customer_id),
            monthly_ttl=MONTHLY_TTL,
            rate_window=RATE_WINDOW,
        )

    async def store_units(self, key: str, units: int) -> None:
        await self._counters.set_counter(key, units, ttl=UNITS_TTL)


@dataclass(frozen=True)
class PlatformSources:
    dependencies: V1Dependencies
    catalog: CatalogView
    on_startup: list[Hook]
    """Starts polling the catalog, waiting a while for its first load (before the server
    takes calls)."""
    on_shutdown: list[Hook]
    readiness: list[ReadinessCheck]
    """``catalog``: not ready (``loading``) until the catalog's first load has succeeded."""


def platform_dependencies(
    *,
    transport: Transport,
    credentials: TokenSource,
    counters: CounterStore,
    publisher: Publisher,
    config: Config,
    sessions: SessionFactory | None = None,
    local_services: LocalServices | None = None,
    alerts: Alerts | None = None,
    spill: EventSpill | None = None,
    served: ServedCharges | None = None,
    served_holds: ServedHolds | None = None,
    first_load_wait: timedelta | None = FIRST_LOAD_WAIT,
) -> PlatformSources:
    """Everything the public API needs, its clients calling with ``credentials`` (the
    ``gateway`` service account's token source). The server starts once the catalog's
    first load is done or ``first_load_wait`` has passed (None: however long it takes)."""
    catalog = CatalogView(PublicapiClient(transport, credentials), counters)
    dependencies = V1Dependencies(
        transport=transport,
        catalog=catalog,
        keys=V1KeyDirectory(
            counters, V1Client(transport, credentials), settings_from(config).pepper
        ),
        quotas=PlatformQuotas(counters, config),
        balances=BalanceCurrent(BalanceClient(transport, credentials)),
        counters=counters,
        tokens=GrantTokens(AuthClient(transport, credentials)),
        publisher=publisher,
        sessions=sessions,
        local_services=local_services or {},
        alerts=alerts,
        credentials=credentials,
        spill=spill,
        served=served,
        served_holds=served_holds,
    )

    async def start() -> None:
        await catalog.start(first_load_wait)

    async def loaded() -> None:
        if not catalog.loaded:
            raise NotReady("loading")

    return PlatformSources(
        dependencies, catalog, [start], [catalog.stop], [ReadinessCheck("catalog", loaded)]
    )
