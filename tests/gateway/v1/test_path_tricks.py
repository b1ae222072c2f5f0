"""The endpoint that is priced, admitted, counted and forwarded is one canonical name.

Requests go over a real socket to the gateway served by uvicorn, with the request target
written byte for byte (an HTTP client would normalise ``..`` or re-encode), so the server's
own percent-decoding is part of what is tested. The upstream records every path it gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.v1.servers import serve_app
from gateway.v1.support import CUSTOMER, KEY, Catalog, Gateway, entry, gateway, hello_entry
from m3o.runtime.counters import CounterStore
from m3o.services.usage.counters import endpoint_name

PRICE = 1000


@dataclass
class Upstream:
    address: str = ""
    paths: list[str] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        query = request.url.query
        self.paths.append(request.url.path + (f"?{query}" if query else ""))
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{rest:path}", self.handle, methods=["POST"])])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def send(address: str, method: str, target: str, body: bytes = b"{}") -> Answer:
    """One request whose request-target is sent exactly as given."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
    async with asyncio.timeout(10):
        raw = await reader.read()
    writer.close()
    top, _, content = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, content)


@dataclass
class Served:
    gw: Gateway
    upstream: Upstream
    address: str

    async def post(self, target: str) -> Answer:
        return await send(self.address, "POST", target)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    found = Upstream()
    async with serve_app(found.app()) as address:
        found.address = f"http://{address}"
        yield found


async def _served(
    counters: CounterStore, upstream: Upstream, balance: int
) -> AsyncIterator[Served]:
    catalog = Catalog(
        entry("paid", upstream.address, protocol="http", pricing={"Paid.Call": PRICE}),
        entry("based", f"{upstream.address}/base/v2", protocol="http"),
        hello_entry(),
    )
    gw = gateway(counters, catalog=catalog, balances={CUSTOMER: balance})
    try:
        async with serve_app(gw.app) as address:
            yield Served(gw, upstream, address)
    finally:
        await gw.v1.calls.forwarders.close()


@pytest.fixture
async def broke(counters: CounterStore, upstream: Upstream) -> AsyncIterator[Served]:
    """The gateway, with a customer whose balance is 0."""
    async for served in _served(counters, upstream, 0):
        yield served


@pytest.fixture
async def funded(counters: CounterStore, upstream: Upstream) -> AsyncIterator[Served]:
    """The gateway, with a customer who can pay for a hundred paid calls."""
    async for served in _served(counters, upstream, 100 * PRICE):
        yield served


NOT_ENDPOINTS = [
    # percent-encoded reserved characters: the probes that once went through for free
    "/v1/paid/call%3F",
    "/v1/paid/call%23",
    "/v1/paid/call%3Fa=1%26b=2",
    "/v1/based/x/call%3Fa=1%26b=2",
    "/v1/paid/call%2F",
    "/v1/paid%2Fcall",
    "/v1/paid/call%00",
    "/v1/paid/call%20",
    "/v1/paid/call%3B",
    "/v1/paid/call;x=1",
    "/v1/paid/call.json",
    # encoded unreserved characters are refused too: one spelling per name
    "/v1/paid/c%61ll",
    "/v1/paid/%43all",
    # dot segments, plain and encoded
    "/v1/based/x/..",
    "/v1/paid/call/..",
    "/v1/paid/../paid/call",
    "/v1/paid/./call",
    "/v1/paid/%2E%2E/call",
    "/v1/paid/call/%2e",
    # unicode look-alikes of "call" and "paid"
    "/v1/paid/%E2%85%BDall",  # U+217D SMALL ROMAN NUMERAL ONE HUNDRED
    "/v1/paid/%EF%BD%83all",  # U+FF43 FULLWIDTH LATIN SMALL LETTER C
    "/v1/pa%C3%ADd/call",  # i with acute
    "/v1/paid/%C4%B0all",  # U+0130 capital I with dot (lower() gives two characters)
    "/v1/paid/call%C2%A0",  # no-break space
    # a part that is too long to be a name
    "/v1/paid/" + "c" * 200,
]


@pytest.mark.parametrize("target", NOT_ENDPOINTS)
async def test_a_path_that_is_not_an_endpoint_name_is_refused_before_admission(
    broke: Served, target: str
) -> None:
    answer = await broke.post(target)

    assert answer.status == 404, answer.body
    assert answer.json() == {"id": "v1", "code": 404, "detail": "Not found", "status": "Not Found"}
    assert "x-m3o-price" not in answer.headers
    assert "ratelimit-remaining" not in answer.headers  # admission never ran
    assert broke.upstream.paths == []
    assert await broke.gw.events() == []


@pytest.mark.parametrize(
    "target",
    [
        "/v1/paid/call",
        "/v1/paid/Call",
        "/v1/paid/CALL",
        "/v1/PAID/call",
        "/v1/paid/paid/call",
        "/v1/paid/Paid/CALL",
        "/v1/paid/call/",
        "/v1//paid//call",
        "/v1/paid/paid/call/ignored",
    ],
)
async def test_every_spelling_of_a_priced_endpoint_is_priced(broke: Served, target: str) -> None:
    answer = await broke.post(target)

    assert answer.status == 403, answer.body
    assert answer.json()["detail"] == "Request blocked. Insufficient credit"
    assert broke.upstream.paths == []


@pytest.mark.parametrize(
    "target",
    ["/v1/paid/call", "/v1/paid/CALL", "/v1/Paid/pAiD/cAlL", "/v1/paid/call/", "/v1//paid//call"],
)
async def test_every_spelling_of_a_priced_endpoint_is_charged_and_forwarded_as_declared(
    funded: Served, target: str
) -> None:
    answer = await funded.post(target)

    assert answer.status == 200, answer.body
    assert answer.headers["x-m3o-price"] == str(PRICE)
    assert funded.upstream.paths == ["/Paid/Call"]
    [event] = await funded.gw.events()
    assert (event.api_name, event.endpoint_name, event.price) == ("paid", "Paid.Call", str(PRICE))
    assert await funded.gw.count(endpoint_name("paid", "Paid.Call")) == 1


async def test_the_query_string_stays_in_the_request_and_never_reaches_the_upstream_path(
    funded: Served,
) -> None:
    answer = await funded.post("/v1/based/x/call?a=1&b=2")

    assert answer.status == 200, answer.body
    assert funded.upstream.paths == ["/base/v2/X/Call"]


async def test_a_declared_endpoint_of_a_described_api_is_found_in_any_case(
    funded: Served,
) -> None:
    for target in ("/v1/helloworld/call", "/v1/HELLOWORLD/helloworld/CALL"):
        answer = await funded.post(target)
        assert answer.status == 200, answer.body
    events = await funded.gw.events()
    assert [e.endpoint_name for e in events] == ["Helloworld.Call", "Helloworld.Call"]


def _series(text: str, fragment: str) -> set[tuple[tuple[str, str], ...]]:
    found = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if fragment in sample.labels.get("route", ""):
                found.add(tuple(sorted(sample.labels.items())))
    return found


async def test_invented_endpoint_names_share_one_metric_label_and_one_usage_counter(
    funded: Served,
) -> None:
    calls = 30
    for n in range(calls):
        answer = await funded.post(f"/v1/based/x/m{n}")
        assert answer.status == 200, answer.body
        assert answer.headers["x-m3o-price"] == "free"
    answer = await funded.post("/v1/helloworld/nosuchthing")
    assert answer.status == 404

    assert len(funded.upstream.paths) == calls  # each was forwarded under its own name
    assert funded.upstream.paths[-1] == f"/base/v2/X/M{calls - 1}"
    events = await funded.gw.events()
    assert {e.endpoint_name for e in events} == {"unknown"}
    assert await funded.gw.count(endpoint_name("based", "unknown")) == calls
    assert await funded.gw.count(endpoint_name("based", "X.M0")) == 0

    metrics = await send(funded.address, "GET", "/metrics")
    routes = {dict(labels)["route"] for labels in _series(metrics.body.decode(), "/v1/")}
    assert routes == {"/v1/based/unknown", "/v1/<unknown>"}


async def test_an_undeclared_endpoint_whose_name_is_not_an_identifier_is_not_found(
    funded: Served,
) -> None:
    answer = await funded.post("/v1/based/a-b/call")

    assert answer.status == 404
    assert answer.json()["detail"] == "No such endpoint"
    assert funded.upstream.paths == []
