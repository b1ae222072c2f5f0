"""The live usage counters: their key names, expiries, tiers, quotas and caps.

Usage owns these names; the gateway's admission increments the monthly counters through
them and nobody else spells them. Every counter belongs to a customer, the project id that
owns the API key (:data:`GLOBAL_CUSTOMER` collects the daily counts of everyone):

- monthly (``YYYYMM``, UTC), kept :data:`MONTHLY_TTL`: ``<api>$<Endpoint>``
  (:func:`endpoint_name`), :data:`TOTAL` (every call) and :data:`TOTAL_FREE` (calls charged
  ``free``). The gateway's admission counts them; usage reads them.
- daily (``YYYYMMDD``, UTC), kept :data:`DAILY_TTL`: ``<api>`` and ``<api>$<Endpoint>``, for
  the customer and for :data:`GLOBAL_CUSTOMER`. The usage service counts them from request
  events once each event is in the history (the history is the truth; these are a cache).
- the customer's subscription tier (:func:`tier_key`, a value; missing means
  :data:`DEFAULT_TIER`), mirrored from the usage service's table.
- unit usage (:func:`unit_key`), kept :data:`UNITS_TTL`: the units (rows, bytes) an API's
  usage endpoint last reported for ``<api>$<Endpoint>`` of a customer. The gateway writes
  it from the report and compares capped calls with it; missing means never reported.

This module imports nothing of the service but the runtime, so the gateway may use it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from m3o.runtime.config import Config
from m3o.runtime.config.sections import UsageConfig
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP

__all__ = [
    "DAILY_TTL",
    "DEFAULT_TIER",
    "GLOBAL_CUSTOMER",
    "MONTHLY_TTL",
    "NO_CAP",
    "TOTAL",
    "TOTAL_FREE",
    "UNITS_TTL",
    "cap_config_name",
    "cap_for",
    "daily_key",
    "day_name",
    "endpoint_name",
    "free_quota",
    "month_name",
    "monthly_key",
    "tier_key",
    "tier_of",
    "unit_key",
]

MONTHLY_TTL = timedelta(days=40)
"""Expiry of a monthly counter, given when it is created: longer than any month."""
DAILY_TTL = timedelta(hours=48)
"""Expiry of a daily counter, given when it is created."""
UNITS_TTL = timedelta(days=40)
"""Expiry of a reported unit usage, given at every report: a value is kept this long
after the last report that could be had."""

TOTAL = "total"
"""Monthly counter of every call of a customer."""
TOTAL_FREE = "totalfree"
"""Monthly counter of a customer's calls charged ``free`` (the fair-use quota)."""
GLOBAL_CUSTOMER = "total"
"""The customer under which the daily counts of all customers add up."""
DEFAULT_TIER = "free"
"""The tier of a customer whose subscription never changed."""

_PREFIX = "usage"


def endpoint_name(api: str, endpoint: str) -> str:
    """The counter name of an endpoint: ``helloworld$Helloworld.Call``."""
    return f"{api}${endpoint}"


def month_name(moment: datetime | date) -> str:
    """``YYYYMM`` of ``moment`` (a timezone-aware datetime is taken in UTC)."""
    return _utc_date(moment).strftime("%Y%m")


def day_name(moment: datetime | date) -> str:
    """``YYYYMMDD`` of ``moment`` (a timezone-aware datetime is taken in UTC)."""
    return _utc_date(moment).strftime("%Y%m%d")


def monthly_key(project_id: str, name: str, now: datetime | date) -> str:
    """The monthly counter ``name`` (``total``, ``totalfree``, ``<api>$<Endpoint>``) of
    ``project_id`` for the month of ``now``."""
    return f"{_PREFIX}:monthly:{month_name(now)}:{project_id}:{name}"


def daily_key(customer_id: str, name: str, day: datetime | date) -> str:
    """The daily counter ``name`` (``<api>``, ``<api>$<Endpoint>``) of ``customer_id`` (or
    :data:`GLOBAL_CUSTOMER`) for the day of ``day``."""
    return f"{_PREFIX}:daily:{day_name(day)}:{customer_id}:{name}"


def unit_key(customer_id: str, name: str) -> str:
    """The unit usage an API last reported for ``name`` (``<api>$<Endpoint>``) of
    ``customer_id`` (the project)."""
    return f"{_PREFIX}:units:{customer_id}:{name}"


def tier_key(customer_id: str) -> str:
    """The value holding ``customer_id``'s subscription tier."""
    return f"{_PREFIX}:tier:{customer_id}"


async def tier_of(counters: CounterStore, customer_id: str) -> str:
    """``customer_id``'s tier: the mirrored value, :data:`DEFAULT_TIER` when there is none."""
    return await counters.get_value(tier_key(customer_id)) or DEFAULT_TIER


def _usage(config: Config | UsageConfig) -> UsageConfig:
    return config.usage if isinstance(config, Config) else config


def free_quota(config: Config | UsageConfig, tier: str) -> int:
    """Monthly free calls to free endpoints on ``tier``; a tier not configured gets the
    free tier's."""
    quotas = _usage(config).quotas
    return quotas.get(tier, quotas.get(DEFAULT_TIER, 0))


def cap_config_name(api: str, endpoint: str) -> str:
    """How ``usage.usage_caps`` spells an endpoint: ``.`` written ``_`` in the endpoint part
    only (``db$Db_Create``), since config keys cannot hold dots."""
    return f"{api}${endpoint.replace('.', '_')}"


def cap_for(config: Config | UsageConfig, tier: str, api: str, endpoint: str) -> int:
    """The usage cap of ``api``'s ``endpoint`` on ``tier``; :data:`NO_CAP` when none.

    0 means the endpoint is not available on the tier. Names compare case-insensitively
    (``/v1/DB/create`` and a key ``db$Db_Create`` agree).
    """
    caps = _usage(config).usage_caps.get(tier)
    if not caps:
        return NO_CAP
    wanted = cap_config_name(api, endpoint)
    found = caps.get(wanted)
    if found is not None:
        return found
    folded = wanted.casefold()
    for name, cap in caps.items():
        if name.casefold() == folded:
            return cap
    return NO_CAP


def _utc_date(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment.astimezone(UTC).date()
    return moment
