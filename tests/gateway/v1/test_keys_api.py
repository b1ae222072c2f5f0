"""The v1 service's HTTP paths: key management beside the public API, admin operations
included; the gateway's own lookup has no path."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.v1.support import CUSTOMER_TOKEN, FakeV1, gateway
from m3o.gateway.v1.keys_api import INTERNAL_METHODS, KEY_PATHS, key_path
from m3o.runtime.counters import CounterStore
from m3o.services.v1.proto.client import SPEC


@pytest.mark.parametrize(
    ("path", "method", "body", "expected"),
    [
        (
            "/v1/api/keys/block",
            "BlockKey",
            {"user_id": "cus-1", "key_id": "key-1", "message": "Unpaid invoice"},
            {"user_id": "cus-1", "key_id": "key-1", "message": "Unpaid invoice"},
        ),
        (
            "/v1/api/keys/unblock",
            "UnblockKey",
            {"userId": "cus-1", "namespace": "micro"},
            {"user_id": "cus-1", "namespace": "micro"},
        ),
        ("/v1/api/keys/delete", "DeleteCustomer", {"id": "cus-1"}, {"id": "cus-1"}),
    ],
)
async def test_admin_key_paths_call_the_v1_service_with_the_callers_token(
    counters: CounterStore,
    path: str,
    method: str,
    body: dict[str, Any],
    expected: dict[str, str],
) -> None:
    v1 = FakeV1()
    gw = gateway(counters, extra_services=[(SPEC, v1)])
    async with gw.http() as http:
        response = await http.post(
            path, json=body, headers={"Authorization": f"Bearer {CUSTOMER_TOKEN}"}
        )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    [(called, request, ctx)] = v1.calls
    assert called == method
    assert {field: getattr(request, field) for field in expected} == expected
    assert ctx.account is not None  # the v1 service decides who may (admins, services)
    assert gw.hello.seen == []


@pytest.mark.parametrize("path", ["/v1/ResolveKey", "/v1/api/keys/resolve", "/v1/BlockKey"])
async def test_the_v1_service_has_no_other_http_paths(counters: CounterStore, path: str) -> None:
    v1 = FakeV1()
    gw = gateway(counters, extra_services=[(SPEC, v1)])
    async with gw.http() as http:
        response = await http.post(
            path, json={"hash": "0" * 64}, headers={"Authorization": f"Bearer {CUSTOMER_TOKEN}"}
        )
    # The public API's answer (no such API, or not an API key): the v1 service is not called.
    assert response.status_code in (401, 404)
    assert v1.calls == []


def test_every_v1_method_has_a_path_or_is_internal() -> None:
    served = set(KEY_PATHS.values())
    assert served.isdisjoint(INTERNAL_METHODS)
    assert served | INTERNAL_METHODS == set(SPEC.methods)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("BlockKey", "/v1/api/keys/block"),
        ("unblockkey", "/v1/api/keys/unblock"),
        ("DeleteCustomer", "/v1/api/keys/delete"),
        ("GenerateKey", "/v1/api/keys/generate"),
        ("ListAPIs", "/v1/api/apis/list"),
        ("ResolveKey", None),
        ("Nope", None),
    ],
)
def test_key_path_finds_the_path_of_a_method(method: str, path: str | None) -> None:
    assert key_path(method) == path
