"""Websockets on /v1/<api>/<endpoint>, over a real uvicorn server and a websockets client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.v1.grpc_upstream import REPLY, REQUEST, EchoUpstream, echo_file, serve_echo
from gateway.v1.servers import serve_app
from gateway.v1.support import (
    CUSTOMER,
    KEY,
    Catalog,
    Gateway,
    Keys,
    config_with,
    entry,
    gateway,
    hello_entry,
    key_record,
)
from m3o.gateway.v1 import PublicAPISettings
from m3o.runtime.counters import CounterStore
from m3o.services.balance.hot import hot_key

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def echo() -> AsyncIterator[EchoUpstream]:
    async with serve_echo() as upstream:
        yield upstream


def _catalog(echo: EchoUpstream | None = None) -> Catalog:
    entries = [hello_entry(pricing={"Helloworld.Stream": 10, "Helloworld.Call": 3})]
    if echo is not None:
        pricing = {"Echo.Call": 2, "Echo.Count": 5, "Echo.Chat": 4}
        entries.append(entry("lab", echo.address, files=[echo_file()], pricing=pricing))
    return Catalog(*entries)


@asynccontextmanager
async def _socket(
    gw: Gateway, path: str, *, lifespan: Literal["on", "off"] = "off", **options: Any
) -> AsyncIterator[ClientConnection]:
    """A websocket to ``path`` of the gateway, served by uvicorn on a free port."""
    async with (
        serve_app(gw.app, lifespan=lifespan) as address,
        connect(f"ws://{address}{path}", **options) as ws,
    ):
        yield ws


async def _frames(ws: ClientConnection) -> list[Any]:
    """Every frame until the server closes the socket."""
    frames: list[Any] = []
    try:
        while True:
            frames.append(await ws.recv())
    except ConnectionClosed:
        return frames


def _close(ws: ClientConnection) -> tuple[int | None, Any]:
    reason = ws.close_reason or ""
    return ws.close_code, orjson.loads(reason) if reason.startswith("{") else reason


async def _settled(gw: Gateway, count: int) -> list[Any]:
    """The events once ``count`` have been recorded (the server finishes asynchronously)."""
    for _ in range(200):
        events = await gw.events()
        if len(events) >= count:
            return events
        await asyncio.sleep(0.01)
    return await gw.events()


async def test_server_stream_sends_each_message_as_a_text_frame_then_closes(
    counters: CounterStore,
) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/helloworld/stream", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"name": "Ann", "messages": 3}).decode())
        frames = await _frames(ws)
    assert ws.response is not None and ws.response.headers["X-Request-Id"]
    assert [orjson.loads(frame) for frame in frames] == [{"message": "Hello Ann"}] * 3
    assert _close(ws) == (1000, "")
    [event] = await _settled(gw, 1)
    assert (event.endpoint_name, event.price, event.url) == (
        "Helloworld.Stream",
        "10",
        "/v1/helloworld/stream",
    )
    assert await counters.get(hot_key(CUSTOMER)) == 90


async def test_browser_key_in_the_websocket_protocol_is_accepted_and_echoed(
    counters: CounterStore,
) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/helloworld/stream", subprotocols=[Subprotocol(KEY)]) as ws:
        assert ws.subprotocol == KEY
        await ws.send(orjson.dumps({"name": "B", "messages": 1}).decode())
        frames = await _frames(ws)
    assert [orjson.loads(frame) for frame in frames] == [{"message": "Hello B"}]


SCOPED = "m3o_scoped-to-another-api"


@pytest.mark.parametrize(
    ("path", "headers", "code", "document"),
    [
        (
            "/v1/helloworld/stream",
            {},
            4401,
            {"id": "v1", "code": 401, "detail": "Unauthorized", "status": "Unauthorized"},
        ),
        (
            "/v1/helloworld/stream",
            {"Authorization": "Bearer m3o_nope"},
            4401,
            {"id": "v1", "code": 401, "detail": "Unauthorized", "status": "Unauthorized"},
        ),
        (
            "/v1/helloworld/stream",
            {"Authorization": f"Bearer {SCOPED}"},
            4403,
            {
                "id": "v1.blocked",
                "code": 403,
                "detail": "Request blocked. Insufficient privileges",
                "status": "Forbidden",
            },
        ),
        (
            "/v1/nothere/stream",
            AUTH,
            4404,
            {"id": "v1", "code": 404, "detail": "No such API", "status": "Not Found"},
        ),
        (
            "/v1/helloworld",
            AUTH,
            4404,
            {"id": "v1", "code": 404, "detail": "Not found", "status": "Not Found"},
        ),
    ],
)
async def test_call_refused_before_admission_is_accepted_then_closed_with_the_error(
    counters: CounterStore, path: str, headers: dict[str, str], code: int, document: Any
) -> None:
    # An HTTP error to the handshake would crash a Node process using M3O's client.
    keys = Keys({KEY: key_record(), SCOPED: key_record("key-2", scopes=["other"])})
    gw = gateway(counters, catalog=_catalog(), keys=keys)
    async with _socket(gw, path, additional_headers=headers) as ws:
        assert ws.response is not None and ws.response.headers["X-Request-Id"]
        assert await _frames(ws) == []
    assert _close(ws) == (code, document)
    assert await gw.events() == []


async def test_browser_refused_gets_its_protocol_back_then_the_close(
    counters: CounterStore,
) -> None:
    # Browsers fail a handshake that does not choose the protocol they offered, and then
    # show no close code: the refusal is accepted with it like a call.
    gw = gateway(counters, catalog=_catalog())
    unknown = Subprotocol("m3o_unknown")
    async with _socket(gw, "/v1/helloworld/stream", subprotocols=[unknown]) as ws:
        assert ws.subprotocol == unknown
        assert await _frames(ws) == []
    assert _close(ws)[0] == 4401


async def test_refused_admission_closes_with_4000_plus_status_and_the_error(
    counters: CounterStore,
) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 5})
    async with _socket(gw, "/v1/helloworld/stream", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"name": "A"}).decode())
        assert await _frames(ws) == []
    assert _close(ws) == (
        4403,
        {
            "id": "v1.blocked",
            "code": 403,
            "detail": "Request blocked. Insufficient credit",
            "status": "Forbidden",
        },
    )
    assert gw.hello.seen == []


async def test_upstream_error_closes_the_socket_and_releases_the_call(
    counters: CounterStore,
) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/helloworld/stream", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"name": "A", "messages": -1}).decode())
        assert await _frames(ws) == []
    code, reason = _close(ws)
    assert code == 4400
    assert reason["detail"] == "messages must be between 0 and 1000"
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []


async def test_second_message_to_a_server_stream_is_refused_and_the_first_charged(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = gateway(counters, catalog=_catalog(echo), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/lab/count", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"name": "A", "count": 100000, "sleep_ms": 0}).decode())
        await ws.recv()
        await ws.send(orjson.dumps({"name": "again"}).decode())
        await _frames(ws)
    code, reason = _close(ws)
    assert code == 4400
    assert reason["detail"] == "This endpoint takes one request message"
    [event] = await _settled(gw, 1)
    assert event.price == "5"
    await gw.v1.calls.forwarders.close()


async def test_stream_failing_midway_is_released(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = gateway(counters, catalog=_catalog(echo), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/lab/count", additional_headers=AUTH) as ws:
        request = {"name": "A", "count": 5, "fail_after": 2, "fail_code": 3}
        await ws.send(orjson.dumps(request).decode())
        frames = await _frames(ws)
    assert len(frames) == 2
    code, reason = _close(ws)
    assert code == 4400
    assert reason["detail"] == "stream failed"
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []
    await gw.v1.calls.forwarders.close()


async def test_a_stream_message_past_the_limit_is_a_crash_released(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = gateway(
        counters,
        catalog=_catalog(echo),
        balances={CUSTOMER: 100},
        settings=PublicAPISettings(max_answer_bytes=1000),
    )
    async with _socket(gw, "/v1/lab/count", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"name": "x" * 2000, "count": 2}).decode())
        frames = await _frames(ws)
    code, reason = _close(ws)
    assert (frames, code) == ([], 4500)
    assert reason == "Error processing request. If the problem persists please contact support"
    assert await counters.get(hot_key(CUSTOMER)) == 100
    assert await gw.events() == []
    await gw.v1.calls.forwarders.close()


async def test_client_leaving_a_stream_early_still_pays(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = gateway(counters, catalog=_catalog(echo), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/lab/count", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"name": "A", "count": 100000}).decode())
        await ws.recv()
    [event] = await _settled(gw, 1)
    assert event.price == "5"
    assert await counters.get(hot_key(CUSTOMER)) == 95
    await gw.v1.calls.forwarders.close()


async def test_bidirectional_stream_admits_and_meters_every_client_message(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    config = config_with({"v1": {"rate-limits": {"free": 3}}})
    gw = gateway(counters, config=config, catalog=_catalog(echo), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/lab/echo/chat", additional_headers=AUTH) as ws:
        replies = []
        for name in ("a", "b", "c"):
            await ws.send(orjson.dumps({"name": name}).decode())
            replies.append(orjson.loads(await ws.recv()))
        await ws.send(orjson.dumps({"name": "d"}).decode())
        await _frames(ws)
    assert [reply["message"] for reply in replies] == ["Hello a", "Hello b", "Hello c"]
    assert replies[0]["authorization"] == "Bearer token-key-1"
    code, reason = _close(ws)
    assert (code, reason["detail"]) == (4429, "Too Many Requests")
    events = await _settled(gw, 3)
    assert [(e.endpoint_name, e.price) for e in events] == [("Echo.Chat", "4")] * 3
    assert await counters.get(hot_key(CUSTOMER)) == 88
    assert [name for name, _, _ in echo.calls] == ["Chat"] * 3
    await gw.v1.calls.forwarders.close()


async def test_binary_frames_carry_binary_messages(
    counters: CounterStore, echo: EchoUpstream
) -> None:
    gw = gateway(counters, catalog=_catalog(echo), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/lab/count", additional_headers=AUTH) as ws:
        await ws.send(REQUEST(name="Bin", count=2).SerializeToString())
        frames = await _frames(ws)
    assert all(isinstance(frame, bytes) for frame in frames)
    replies: list[Any] = [REPLY.FromString(frame) for frame in frames]
    assert [reply.index for reply in replies] == [0, 1]
    assert replies[0].message == "Hello Bin"
    await gw.v1.calls.forwarders.close()


async def test_unary_endpoint_over_a_websocket_is_one_call_per_message(
    counters: CounterStore,
) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/helloworld/call", additional_headers=AUTH) as ws:
        answers = []
        for name in ("x", "y"):
            await ws.send(orjson.dumps({"name": name}).decode())
            answers.append(orjson.loads(await ws.recv()))
    assert answers == [{"message": "Hello x"}, {"message": "Hello y"}]
    events = await _settled(gw, 2)
    assert [e.price for e in events] == ["3", "3"]
    assert await counters.get(hot_key(CUSTOMER)) == 94


async def test_message_that_is_not_json_closes_with_bad_request(counters: CounterStore) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/helloworld/stream", additional_headers=AUTH) as ws:
        await ws.send("not json")
        await _frames(ws)
    code, reason = _close(ws)
    assert (code, reason["detail"]) == (4400, "Request message is not valid JSON")
    assert await gw.count("total") == 0


async def test_graceful_stop_publishes_every_request_event(counters: CounterStore) -> None:
    gw = gateway(counters, catalog=_catalog(), balances={CUSTOMER: 100})
    async with _socket(gw, "/v1/helloworld/call", additional_headers=AUTH, lifespan="on") as ws:
        for name in ("x", "y", "z"):
            await ws.send(orjson.dumps({"name": name}).decode())
            await ws.recv()
    assert len(gw.publisher.events("requests")) == 3
    assert gw.v1.requests.pending == 0
