"""Failed upstream calls: what the caller is told, and that nothing is charged."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.v1.support import (
    CUSTOMER,
    KEY,
    PROJECT,
    Catalog,
    entry,
    gateway,
    hello_entry,
    hello_file,
)
from m3o.gateway.v1.upstream import UpstreamTimeout, UpstreamUnreachable, public_error
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    Internal,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from m3o.services.balance.hot import debited_key, hot_key

AUTH = {"Authorization": f"Bearer {KEY}"}
UNREACHABLE = "The API is unavailable, please try again later"
CRASHED = "Error processing request. If the problem persists please contact support"


def _priced() -> Catalog:
    return Catalog(hello_entry(pricing={"Helloworld.Call": 10}))


async def _call(gw: Any, name: str) -> Any:
    async with gw.http() as http:
        return await http.post("/v1/helloworld/call", json={"name": name}, headers=AUTH)


async def _assert_nothing_charged(gw: Any, counters: CounterStore) -> None:
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await counters.get(debited_key(CUSTOMER)) == 0
    assert await gw.count("total") == 0
    assert await gw.count("helloworld$Helloworld.Call") == 0
    assert await gw.events() == []


@pytest.mark.parametrize(
    ("name", "code"),
    [("badrequest", 400), ("forbidden", 403), ("notfound", 404), ("conflict", 409)],
)
async def test_upstream_client_error_passes_through_and_is_not_charged(
    any_counters: CounterStore, name: str, code: int
) -> None:
    gw = gateway(any_counters, catalog=_priced(), balances={CUSTOMER: 100})
    response = await _call(gw, name)
    assert response.status_code == code
    assert response.json()["id"] == "helloworld.call"
    assert response.json()["detail"] == f"{name} happened"
    assert "X-M3O-Price" not in response.headers
    assert response.headers["RateLimit-Limit"] == "1000"
    await _assert_nothing_charged(gw, any_counters)
    await gw.v1.calls.drain()
    assert gw.alerts.reported == []


async def test_upstream_crash_is_a_generic_500_with_an_alert_and_not_charged(
    any_counters: CounterStore,
) -> None:
    gw = gateway(any_counters, catalog=_priced(), balances={CUSTOMER: 100})
    response = await _call(gw, "crash")
    assert response.status_code == 500
    assert response.json() == {
        "id": "v1",
        "code": 500,
        "detail": CRASHED,
        "status": "Internal Server Error",
    }
    assert "hunter2" not in response.text
    await gw.v1.calls.drain()
    [(category, action, user, metadata)] = gw.alerts.reported
    assert (category, action, user) == ("panic", "/v1/helloworld/call", PROJECT)
    assert metadata["error"]
    await _assert_nothing_charged(gw, any_counters)


async def test_upstream_unavailable_is_503_and_not_charged(counters: CounterStore) -> None:
    gw = gateway(counters, catalog=_priced(), balances={CUSTOMER: 100})
    response = await _call(gw, "unavailable")
    assert response.status_code == 503
    assert response.json()["detail"] == "The API is unavailable, please try again later"
    await _assert_nothing_charged(gw, counters)


async def test_local_service_that_is_not_hosted_is_unavailable(counters: CounterStore) -> None:
    gw = gateway(counters, catalog=Catalog(entry("elsewhere", "local:gone", files=[hello_file()])))
    async with gw.http() as http:
        response = await http.post("/v1/elsewhere/helloworld/call", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["detail"] == "API not available"
    assert await gw.count("total") == 0


@pytest.mark.parametrize(
    ("failure", "kind", "detail"),
    [
        (BadRequest("up", "bad"), BadRequest, "bad"),
        (Unauthorized("up", "who"), Unauthorized, "who"),
        (Forbidden("up", "no"), Forbidden, "no"),
        (NotFound("up", "gone"), NotFound, "gone"),
        (Conflict("up", "twice"), Conflict, "twice"),
        (TooManyRequests("up", "slow down"), TooManyRequests, "slow down"),
        (UpstreamTimeout(), Unavailable, "The API did not answer in time"),
        (TimeoutError(), Unavailable, "The API did not answer in time"),
        (DeadlineExceeded("up"), Unavailable, "The API did not answer in time"),
        (
            UpstreamUnreachable("refused"),
            Unavailable,
            "The API is unavailable, please try again later",
        ),
        (Unavailable("up", "down"), Unavailable, "The API is unavailable, please try again later"),
        (Internal("up", "boom"), Internal, CRASHED),
        (RuntimeError("boom"), Internal, CRASHED),
    ],
)
def test_public_error_of_each_failure(
    failure: BaseException, kind: type[Exception], detail: str
) -> None:
    error, crashed = public_error(failure)
    assert type(error) is kind
    assert error.detail == detail
    assert crashed == (kind is Internal)
