"""The order of checks on every call, their messages and headers, on every counter store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gateway.v1.support import (
    CUSTOMER,
    KEY,
    Catalog,
    FailingCounters,
    Keys,
    config_with,
    gateway,
    hello_entry,
    key_record,
)
from m3o.gateway.v1 import PublicAPISettings
from m3o.runtime.counters import CounterStore
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.usage.counters import tier_key

AUTH = {"Authorization": f"Bearer {KEY}"}
CALL = "/v1/helloworld/call"


def _blocked(detail: str) -> dict[str, Any]:
    return {"id": "v1.blocked", "code": 403, "detail": detail, "status": "Forbidden"}


async def _post(gw: Any, path: str = CALL, name: str = "A") -> Any:
    async with gw.http() as http:
        return await http.post(path, json={"name": name}, headers=AUTH)


# 1 and 2: the key's status, then its scopes.


async def test_blocked_key_is_refused_with_its_message_before_its_scopes(
    counters: CounterStore,
) -> None:
    keys = Keys({KEY: key_record(scopes=["other"], blocked="User has been banned")})
    gw = gateway(counters, keys=keys)
    response = await _post(gw)
    assert response.status_code == 403
    assert response.json() == _blocked("Request blocked. User has been banned")
    assert gw.hello.seen == []


async def test_key_without_the_api_in_scope_has_insufficient_privileges(
    counters: CounterStore,
) -> None:
    gw = gateway(counters, keys=Keys({KEY: key_record(scopes=["weather", "db"])}))
    response = await _post(gw)
    assert response.status_code == 403
    assert response.json() == _blocked("Request blocked. Insufficient privileges")
    assert await gw.count("total") == 0


async def test_scope_check_comes_before_the_catalog(counters: CounterStore) -> None:
    gw = gateway(counters, keys=Keys({KEY: key_record(scopes=["weather"])}))
    response = await _post(gw, "/v1/nothere/call")
    assert response.json() == _blocked("Request blocked. Insufficient privileges")


# 3: the rate limit.


async def test_over_the_rate_limit_is_429_with_retry_after_and_ratelimit_headers(
    any_counters: CounterStore,
) -> None:
    config = config_with({"v1": {"rate-limits": {"free": 2}}})
    gw = gateway(any_counters, config=config)
    first, second, third = [await _post(gw) for _ in range(3)]
    assert [r.status_code for r in (first, second)] == [200, 200]
    assert first.headers["RateLimit-Limit"] == "2"
    assert first.headers["RateLimit-Remaining"] == "1"
    assert third.status_code == 429
    assert third.json() == {
        "id": "v1.blocked",
        "code": 429,
        "detail": "Too Many Requests",
        "status": "Too Many Requests",
    }
    assert third.headers["Retry-After"] == "1"
    assert third.headers["RateLimit-Limit"] == "2"
    assert third.headers["RateLimit-Remaining"] == "0"
    assert third.headers["RateLimit-Reset"] in {"0", "1"}
    assert "X-M3O-Price" not in third.headers
    assert len(gw.hello.seen) == 2


async def test_concurrent_calls_never_exceed_the_rate_limit(any_counters: CounterStore) -> None:
    config = config_with({"v1": {"rate-limits": {"free": 5}}})
    gw = gateway(any_counters, config=config)
    async with gw.http() as http:
        responses = await asyncio.gather(
            *(http.post(CALL, json={"name": "A"}, headers=AUTH) for _ in range(20))
        )
    codes = sorted(r.status_code for r in responses)
    odd = [(r.status_code, r.text) for r in responses if r.status_code not in (200, 429)]
    assert not odd, odd
    assert codes.count(200) == 5
    assert codes.count(429) == 15


async def test_rate_limit_follows_the_customers_tier(counters: CounterStore) -> None:
    config = config_with({"v1": {"rate-limits": {"free": 1, "business": 3}}})
    await counters.set_value(tier_key(CUSTOMER), "business")
    gw = gateway(counters, config=config)
    codes = [(await _post(gw)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_tier_missing_from_config_uses_the_free_tiers_limit(counters: CounterStore) -> None:
    config = config_with({"v1": {"rate-limits": {"free": 1}}})
    await counters.set_value(tier_key(CUSTOMER), "platinum")
    gw = gateway(counters, config=config)
    codes = [(await _post(gw)).status_code for _ in range(2)]
    assert codes == [200, 429]


# 4: the usage cap.


async def test_usage_cap_reached_is_refused(any_counters: CounterStore) -> None:
    config = config_with({"usage": {"usage_caps": {"free": {"helloworld$Helloworld_Call": 2}}}})
    gw = gateway(any_counters, config=config)
    codes = [(await _post(gw)).status_code for _ in range(2)]
    third = await _post(gw)
    assert codes == [200, 200]
    assert third.status_code == 403
    assert third.json() == _blocked("Request blocked. Usage cap exceeded")
    assert await gw.count("helloworld$Helloworld.Call") == 2


# 5: free endpoints and the monthly fair-use quota.


async def test_free_endpoint_within_the_monthly_quota_is_charged_free(
    any_counters: CounterStore,
) -> None:
    gw = gateway(any_counters)
    response = await _post(gw)
    assert response.headers["X-M3O-Price"] == "free"
    assert await gw.count("totalfree") == 1
    assert await gw.count("total") == 1
    [event] = await gw.events()
    assert event.price == "free"


async def test_free_endpoint_past_the_quota_costs_one_unit(any_counters: CounterStore) -> None:
    config = config_with({"usage": {"quotas": {"free": 1}}})
    gw = gateway(any_counters, config=config, balances={CUSTOMER: 5})
    first, second = await _post(gw), await _post(gw)
    assert first.headers["X-M3O-Price"] == "free"
    assert second.status_code == 200
    assert second.headers["X-M3O-Price"] == "1"
    assert await any_counters.get(hot_key(CUSTOMER)) == 4
    assert await any_counters.get(debited_key(CUSTOMER)) == 1
    assert [e.price for e in await gw.events()] == ["free", "1"]


async def test_free_endpoint_past_the_quota_without_credit_is_refused(
    counters: CounterStore,
) -> None:
    config = config_with({"usage": {"quotas": {"free": 0}}})
    gw = gateway(counters, config=config)
    response = await _post(gw)
    assert response.status_code == 403
    assert response.json() == _blocked("Request blocked. Insufficient credit")
    assert gw.balances.loaded == [CUSTOMER]


# 6: the endpoint's free quota; 7: the balance.


def _priced(price: int = 10, quota: int = 0) -> Catalog:
    pricing = {"Helloworld.Call": price}
    return Catalog(hello_entry(pricing=pricing, quotas={"Helloworld.Call": quota} if quota else {}))


async def test_priced_endpoint_within_its_free_quota_is_charged_zero(
    any_counters: CounterStore,
) -> None:
    gw = gateway(any_counters, catalog=_priced(quota=1), balances={CUSTOMER: 25})
    first, second = await _post(gw), await _post(gw)
    assert first.headers["X-M3O-Price"] == "0"
    assert second.headers["X-M3O-Price"] == "10"
    assert await any_counters.get(hot_key(CUSTOMER)) == 15
    assert [e.price for e in await gw.events()] == ["0", "10"]


async def test_balance_is_loaded_once_when_admission_does_not_know_it(
    any_counters: CounterStore,
) -> None:
    gw = gateway(any_counters, catalog=_priced(), balances={CUSTOMER: 100})
    codes = [(await _post(gw)).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert gw.balances.loaded == [CUSTOMER]
    assert await any_counters.get(hot_key(CUSTOMER)) == 70


async def test_insufficient_credit_is_refused_and_nothing_is_taken(
    any_counters: CounterStore,
) -> None:
    gw = gateway(any_counters, catalog=_priced(), balances={CUSTOMER: 5})
    response = await _post(gw)
    assert response.status_code == 403
    assert response.json() == _blocked("Request blocked. Insufficient credit")
    assert response.headers["RateLimit-Limit"] == "1000"
    assert await any_counters.get(hot_key(CUSTOMER)) == 5
    assert await gw.count("total") == 0
    assert gw.hello.seen == []
    assert await gw.events() == []


async def test_concurrent_calls_never_overspend_the_balance(any_counters: CounterStore) -> None:
    gw = gateway(any_counters, catalog=_priced(), balances={CUSTOMER: 55})
    await gw.balances.load(CUSTOMER)
    async with gw.http() as http:
        responses = await asyncio.gather(
            *(http.post(CALL, json={"name": "A"}, headers=AUTH) for _ in range(12))
        )
    assert sorted(r.status_code for r in responses).count(200) == 5
    assert await any_counters.get(hot_key(CUSTOMER)) == 5


async def test_the_billing_account_pays_for_the_project(counters: CounterStore) -> None:
    keys = Keys({KEY: key_record(owner="project-9", billing_account="payer")})
    gw = gateway(counters, keys=keys, catalog=_priced(), balances={"payer": 30})
    response = await _post(gw)
    assert response.status_code == 200
    assert await counters.get(hot_key("payer")) == 20
    assert await gw.count("total", project="project-9") == 1


# The counter store unreachable.


async def test_priced_call_is_503_when_the_counter_store_is_unreachable(
    counters: CounterStore,
) -> None:
    settings = PublicAPISettings(fail_open_free=True)
    gw = gateway(FailingCounters(counters), catalog=_priced(), settings=settings)
    response = await _post(gw)
    assert response.status_code == 503
    assert response.json() == {
        "id": "v1",
        "code": 503,
        "detail": "Service unavailable, please try again",
        "status": "Service Unavailable",
    }
    assert gw.hello.seen == []


async def test_free_call_is_503_when_the_store_is_unreachable_unless_failing_open(
    counters: CounterStore,
) -> None:
    closed = gateway(FailingCounters(counters))
    assert (await _post(closed)).status_code == 503
    opened = gateway(FailingCounters(counters), settings=PublicAPISettings(fail_open_free=True))
    response = await _post(opened)
    assert response.status_code == 200
    assert response.headers["X-M3O-Price"] == "free"
    assert "RateLimit-Limit" not in response.headers
    [event] = await opened.events()
    assert event.price == "free"


@pytest.mark.parametrize("tier", ["free", "solo"])
async def test_monthly_counters_count_admitted_calls(counters: CounterStore, tier: str) -> None:
    await counters.set_value(tier_key(CUSTOMER), tier)
    gw = gateway(counters)
    for _ in range(3):
        await _post(gw)
    assert await gw.count("helloworld$Helloworld.Call") == 3
    assert await gw.count("total") == 3


# What passed is kept per key and path (PublicCalls.prepare), never past a change.


async def test_a_key_blocked_or_rescoped_after_a_call_is_refused_once_read_again(
    counters: CounterStore,
) -> None:
    keys = Keys()
    gw = gateway(counters, keys=keys, settings=PublicAPISettings(key_cache_ttl=timedelta(0)))
    assert (await _post(gw)).status_code == 200

    keys.records[KEY] = key_record(scopes=["weather"])
    rescoped = await _post(gw)
    keys.records[KEY] = key_record(blocked="User has been banned")
    blocked = await _post(gw)
    keys.records[KEY] = key_record()
    again = await _post(gw)

    assert rescoped.json() == _blocked("Request blocked. Insufficient privileges")
    assert blocked.json() == _blocked("Request blocked. User has been banned")
    assert again.status_code == 200
    assert len(gw.hello.seen) == 2


async def test_a_price_published_after_a_call_is_charged_on_the_next_call(
    counters: CounterStore,
) -> None:
    catalog = _priced(price=10)
    gw = gateway(counters, catalog=catalog, balances={CUSTOMER: 100})
    first = await _post(gw)

    catalog.entries["helloworld"] = hello_entry(pricing={"Helloworld.Call": 25})
    second = await _post(gw)
    del catalog.entries["helloworld"]
    third = await _post(gw)

    assert (first.headers["X-M3O-Price"], second.headers["X-M3O-Price"]) == ("10", "25")
    assert third.status_code == 404
    assert await counters.get(hot_key(CUSTOMER)) == 65


async def test_each_key_calls_with_its_own_record_on_the_same_path(counters: CounterStore) -> None:
    keys = Keys({KEY: key_record(), "other-key": key_record("key-2", scopes=["weather"])})
    gw = gateway(counters, keys=keys)
    mine = await _post(gw)
    async with gw.http() as http:
        theirs = await http.post(
            CALL, json={"name": "B"}, headers={"Authorization": "Bearer other-key"}
        )

    assert mine.status_code == 200
    assert theirs.json() == _blocked("Request blocked. Insufficient privileges")
