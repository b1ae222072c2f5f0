"""Usage caps on the unit usage an API reports through its usage endpoint, on every
counter store: a real HTTP API (``rows``) whose ``Admin.Usage`` says how many rows a
tenant has, behind the real gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.v1.servers import serve_app
from gateway.v1.support import PROJECT, Catalog, Gateway, config_with, entry, gateway, hello_entry
from m3o.gateway.v1 import PublicAPISettings
from m3o.gateway.v1.gate import UNAVAILABLE
from m3o.gateway.v1.units import ReportError, parse_report
from m3o.runtime.auth import CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.rpc import MethodSpec, ServiceSpec, StaticToken
from m3o.services.usage.counters import unit_key
from support.platform import until

AUTH = {"Authorization": "Bearer m3o_test-key-one"}
CREATE = "/v1/rows/create"
CAP_EXCEEDED = {
    "id": "v1.blocked",
    "code": 403,
    "detail": "Request blocked. Usage cap exceeded",
    "status": "Forbidden",
}
UNITS = unit_key(PROJECT, "rows$Rows.Create")
EVERY_CALL = PublicAPISettings(unit_usage_ttl=timedelta(0))
"""Reports asked again on every call (in the background), so tests need not wait."""


@dataclass
class Rows:
    """The API: ``Rows.Create`` adds a row; ``Admin.Usage`` reports ``units`` rows, or 503
    while ``down``."""

    address: str = ""
    units: int = 0
    down: bool = False
    created: int = 0
    asked: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    """Each usage request and the authorization it came with."""
    failed_asks: int = 0

    async def handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        route = f"{request.path_params['service']}.{request.path_params['method']}"
        if route == "Rows.Create":
            self.created += 1
            return JSONResponse({"id": str(self.created)})
        if route == "Admin.Usage":
            self.asked.append((body, request.headers.get("authorization", "")))
            if self.down:
                self.failed_asks += 1
                return Response("down", status_code=503)
            usage = {"Rows.Create": {"usage": str(self.units), "units": "rows"}}
            return JSONResponse({"usage": usage})
        return JSONResponse({"id": "rows", "code": 404, "detail": "?", "status": "?"}, 404)


@pytest.fixture
async def rows() -> AsyncIterator[Rows]:
    found = Rows()
    app = Starlette(routes=[Route("/{service}/{method}", found.handle, methods=["POST"])])
    async with serve_app(app) as address:
        found.address = f"http://{address}"
        yield found


@pytest.fixture
async def closing() -> AsyncIterator[list[Gateway]]:
    """Gateways to stop at the end (their forwarders and background reports)."""
    made: list[Gateway] = []
    yield made
    for gw in made:
        await gw.v1.units.close()
        await gw.v1.calls.forwarders.close()


def _gateway(
    counters: CounterStore,
    rows: Rows,
    closing: list[Gateway],
    *,
    cap: int = 3,
    settings: PublicAPISettings = EVERY_CALL,
) -> Gateway:
    api = entry(
        "rows",
        rows.address,
        protocol="http",
        pricing={"Rows.Create": 0},
        usage_endpoint="Admin.Usage",
    )
    config = config_with({"usage": {"usage_caps": {"free": {"rows$Rows_Create": cap}}}})
    gw = gateway(
        counters,
        config=config,
        catalog=Catalog(hello_entry(), api),
        settings=settings,
        credentials=StaticToken("gateway-service-token"),
    )
    closing.append(gw)
    return gw


async def _create(gw: Gateway) -> Any:
    async with gw.http() as http:
        return await http.post(CREATE, json={"name": "a row"}, headers=AUTH)


async def _admitted(gw: Gateway) -> bool:
    return (await _create(gw)).status_code == 200


async def test_calls_are_admitted_until_the_reported_units_reach_the_cap(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    gw = _gateway(any_counters, rows, closing)
    rows.units = 2
    first = await _create(gw)
    assert first.status_code == 200
    assert await any_counters.get(UNITS) == 2
    body, authorization = rows.asked[0]
    assert body == {"tenant_id": f"micro/{PROJECT}"}
    assert authorization == "Bearer gateway-service-token"

    rows.units = 3

    async def refused() -> bool:
        return (await _create(gw)).status_code == 403

    await until(refused, "a call refused once the report says 3 rows")
    created = rows.created
    response = await _create(gw)
    assert response.status_code == 403
    assert response.json() == CAP_EXCEEDED
    assert rows.created == created

    rows.units = 1
    await until(lambda: _admitted(gw), "calls admitted again once rows were deleted")


async def test_a_reported_cap_is_refused_like_a_count_cap(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    counted = gateway(
        any_counters,
        config=config_with({"usage": {"usage_caps": {"free": {"helloworld$Helloworld_Call": 0}}}}),
    )
    async with counted.http() as http:
        by_count = await http.post("/v1/helloworld/call", json={"name": "A"}, headers=AUTH)
    rows.units = 5
    by_units = await _create(_gateway(any_counters, rows, closing))
    assert by_units.status_code == by_count.status_code == 403
    assert by_units.json() == by_count.json() == CAP_EXCEEDED


async def test_an_unreachable_reporter_keeps_the_last_known_units(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    gw = _gateway(any_counters, rows, closing)
    rows.units = 3
    assert (await _create(gw)).json() == CAP_EXCEEDED
    rows.down = True
    await _create(gw)
    await until(lambda: rows.failed_asks >= 1, "the reporter asked while down")
    response = await _create(gw)
    assert response.json() == CAP_EXCEEDED
    assert await any_counters.get(UNITS) == 3
    assert rows.created == 0
    await until(lambda: bool(gw.alerts.reported), "operators alerted")
    [(category, action, project, metadata)] = gw.alerts.reported
    assert (category, action, project) == ("usage_report", "/v1/rows", PROJECT)
    assert metadata["usage_endpoint"] == "Admin.Usage"


async def test_units_never_reported_and_a_reporter_down_is_503_and_costs_nothing(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    gw = _gateway(any_counters, rows, closing)
    rows.down = True
    response = await _create(gw)
    assert response.status_code == 503
    assert (response.json()["id"], response.json()["detail"]) == ("v1", UNAVAILABLE)
    assert rows.created == 0
    assert await gw.count("total") == 0
    rows.down = False
    await until(lambda: _admitted(gw), "admitted once the reporter is back")


async def test_a_cap_of_zero_refuses_without_asking_the_api(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    gw = _gateway(any_counters, rows, closing, cap=0)
    response = await _create(gw)
    assert response.json() == CAP_EXCEEDED
    assert rows.asked == []
    assert rows.created == 0


async def test_a_report_is_asked_at_most_once_per_ttl(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    settings = PublicAPISettings(unit_usage_ttl=timedelta(hours=1))
    gw = _gateway(any_counters, rows, closing, settings=settings)
    for _ in range(5):
        assert (await _create(gw)).status_code == 200
    assert len(rows.asked) == 1
    assert rows.created == 5


async def test_concurrent_first_calls_ask_for_one_report(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    settings = PublicAPISettings(unit_usage_ttl=timedelta(hours=1))
    gw = _gateway(any_counters, rows, closing, settings=settings)
    rows.units = 1
    async with gw.http() as http:
        answers = await asyncio.gather(
            *(http.post(CREATE, json={"name": str(i)}, headers=AUTH) for i in range(8))
        )
    assert [a.status_code for a in answers] == [200] * 8
    assert len(rows.asked) == 1


async def test_the_usage_endpoint_is_not_public(
    any_counters: CounterStore, rows: Rows, closing: list[Gateway]
) -> None:
    gw = _gateway(any_counters, rows, closing)
    async with gw.http() as http:
        response = await http.post(
            "/v1/rows/admin/usage", json={"tenant_id": "micro/someone-else"}, headers=AUTH
        )
    assert response.status_code == 404
    assert response.json()["detail"] == "No such endpoint"
    assert rows.asked == []


def _rows_file() -> descriptor_pb2.FileDescriptorProto:
    """``rows.Rows.Create`` and ``rows.Admin.Usage``, as a Go service of the reference
    would declare them (``map<string, Units> usage``, ``int64`` units)."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="rows/rows.proto", package="rows")
    file.syntax = "proto3"

    def message(name: str, *fields: tuple[str, int]) -> descriptor_pb2.DescriptorProto:
        found = file.message_type.add(name=name)
        for number, (field_name, kind) in enumerate(fields, 1):
            found.field.add(name=field_name, number=number, type=kind, label=f.LABEL_OPTIONAL)
        return found

    message("CreateRequest", ("name", f.TYPE_STRING))
    message("CreateResponse", ("id", f.TYPE_STRING))
    message("UsageRequest", ("tenant_id", f.TYPE_STRING))
    message("Units", ("usage", f.TYPE_INT64), ("units", f.TYPE_STRING))
    response = message("UsageResponse")
    entry_type = response.nested_type.add(name="UsageEntry")
    entry_type.options.map_entry = True
    entry_type.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    entry_type.field.add(
        name="value", number=2, type=f.TYPE_MESSAGE, label=f.LABEL_OPTIONAL, type_name=".rows.Units"
    )
    response.field.add(
        name="usage",
        number=1,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".rows.UsageResponse.UsageEntry",
    )
    file.service.add(name="Rows").method.add(
        name="Create", input_type=".rows.CreateRequest", output_type=".rows.CreateResponse"
    )
    file.service.add(name="Admin").method.add(
        name="Usage", input_type=".rows.UsageRequest", output_type=".rows.UsageResponse"
    )
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(_rows_file().SerializeToString())
_TYPES = {
    name: message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"rows.{name}"))
    for name in ("CreateRequest", "CreateResponse", "UsageRequest", "UsageResponse")
}
ROWS_SPEC = ServiceSpec(
    service="rows",
    full_name="rows.Rows",
    methods={
        "Create": MethodSpec("Create", "create", _TYPES["CreateRequest"], _TYPES["CreateResponse"])
    },
)
ADMIN_SPEC = ServiceSpec(
    service="rows",
    full_name="rows.Admin",
    methods={
        "Usage": MethodSpec("Usage", "usage", _TYPES["UsageRequest"], _TYPES["UsageResponse"])
    },
)


@dataclass
class RowsService:
    """The same API as a platform service (``local:rows``), protobuf end to end."""

    units: int = 0
    asked: list[tuple[str, str]] = field(default_factory=list)
    """The tenant of each usage request and the account that asked."""

    async def create(self, request: Any, ctx: CallContext) -> Any:
        return _TYPES["CreateResponse"](id="1")

    async def usage(self, request: Any, ctx: CallContext) -> Any:
        assert ctx.account is not None
        self.asked.append((request.tenant_id, ctx.account.id))
        response = _TYPES["UsageResponse"]()
        response.usage["Rows.Create"].usage = self.units
        response.usage["Rows.Create"].units = "rows"
        return response


async def test_a_protobuf_usage_endpoint_reports_int64_units(counters: CounterStore) -> None:
    service = RowsService(units=3)
    config = config_with({"usage": {"usage_caps": {"free": {"rows$Rows_Create": 3}}}})
    api = entry("rows", "local:rows", files=[_rows_file()], usage_endpoint="Admin.Usage")
    gw = gateway(
        counters,
        config=config,
        catalog=Catalog(api),
        settings=PublicAPISettings(unit_usage_ttl=timedelta(hours=1)),
        upstreams=[(ROWS_SPEC, service), (ADMIN_SPEC, service)],
        credentials=StaticToken("token-gateway"),
    )
    try:
        refused = await _create(gw)
        assert refused.json() == CAP_EXCEEDED
        assert service.asked == [(f"micro/{PROJECT}", "gateway")]
        service.units = 2
        assert (await _create(gw)).json() == CAP_EXCEEDED
        assert len(service.asked) == 1
    finally:
        await gw.v1.units.close()


@pytest.mark.parametrize(
    ("answer", "report"),
    [
        (b'{"usage": {"Db.Create": {"usage": "1200", "units": "rows"}}}', {"db.create": 1200}),
        (b'{"usage": {"Db.Create": {"usage": 7}, "Db.Read": {}}}', {"db.create": 7, "db.read": 0}),
        (b"{}", {}),
    ],
)
def test_a_report_is_read_from_numbers_and_numeric_strings(
    answer: bytes, report: dict[str, int]
) -> None:
    assert parse_report(answer) == report


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b"[]",
        b'{"usage": []}',
        b'{"usage": {"Db.Create": 3}}',
        b'{"usage": {"Db.Create": {"usage": -1}}}',
        b'{"usage": {"Db.Create": {"usage": "1e3"}}}',
        b'{"usage": {"Db.Create": {"usage": true}}}',
        b'{"usage": {"Db.Create": {"usage": 1.5}}}',
    ],
)
def test_an_answer_that_is_not_a_report_is_refused(answer: bytes) -> None:
    with pytest.raises(ReportError):
        parse_report(answer)
