"""The counter names usage exports to the gateway: keys, expiries, tiers, quotas, caps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from m3o.runtime.config import build_config
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP
from m3o.services.usage.counters import (
    cap_for,
    daily_key,
    endpoint_name,
    free_quota,
    monthly_key,
    tier_key,
    tier_of,
)

LATE_ON_JAN_31 = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)


def test_monthly_keys_name_the_utc_month_project_and_counter() -> None:
    name = endpoint_name("helloworld", "Helloworld.Call")
    assert name == "helloworld$Helloworld.Call"
    assert monthly_key("proj-1", name, LATE_ON_JAN_31) == (
        "usage:monthly:202401:proj-1:helloworld$Helloworld.Call"
    )
    assert monthly_key("proj-1", "total", date(2024, 2, 1)) == "usage:monthly:202402:proj-1:total"
    # 00:30 on Feb 1 in UTC+1 is still January in UTC.
    plus_one = datetime(2024, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert monthly_key("p", "totalfree", plus_one) == "usage:monthly:202401:p:totalfree"


def test_daily_keys_name_the_utc_day() -> None:
    assert daily_key("proj-1", "helloworld", LATE_ON_JAN_31) == (
        "usage:daily:20240131:proj-1:helloworld"
    )
    assert daily_key("total", "helloworld$Helloworld.Call", date(2024, 2, 1)) == (
        "usage:daily:20240201:total:helloworld$Helloworld.Call"
    )


def test_keys_refuse_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        monthly_key("p", "total", datetime(2024, 1, 1))  # noqa: DTZ001 - the point


def test_free_quota_of_each_tier_and_free_for_an_unknown_one() -> None:
    config = build_config({"usage": {"quotas": {"pro": 5}}}, {})
    assert free_quota(config, "free") == 10_000
    assert free_quota(config, "solo") == 100_000
    assert free_quota(config, "pro") == 5
    assert free_quota(config.usage, "business") == 10_000_000
    assert free_quota(config, "platinum") == 10_000


def test_caps_use_underscores_for_dots_in_the_endpoint_only() -> None:
    config = build_config(
        {
            "usage": {
                "usage_caps": {"free": {"db$Db_Create": 100, "app$App_Run": 0, "my_api$Svc_A_b": 7}}
            }
        },
        {},
    )
    assert cap_for(config, "free", "db", "Db.Create") == 100
    assert cap_for(config, "free", "app", "App.Run") == 0  # not available on the tier
    assert cap_for(config, "free", "my_api", "Svc.A_b") == 7
    assert cap_for(config, "free", "DB", "db.create") == 100  # names compare case-insensitively
    assert cap_for(config, "free", "db", "Db.Read") == NO_CAP
    assert cap_for(config, "pro", "db", "Db.Create") == NO_CAP  # the tier has no caps
    assert cap_for(config.usage, "free", "db", "Db.Create") == 100


async def test_tier_of_reads_the_mirror_and_defaults_to_free(counters: CounterStore) -> None:
    assert tier_key("cust-1") == "usage:tier:cust-1"
    assert await tier_of(counters, "cust-1") == "free"
    await counters.set_value(tier_key("cust-1"), "pro")
    assert await tier_of(counters, "cust-1") == "pro"
    assert await tier_of(counters, "cust-2") == "free"
