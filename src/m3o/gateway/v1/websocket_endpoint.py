"""``/v1/<api>/<endpoint>`` over a websocket: streaming endpoints, and unary ones too.

The key comes in the ``Authorization`` header or, from browsers, as the
``Sec-WebSocket-Protocol`` value (accepted back as the chosen subprotocol, as browsers
require). A call that fails the checks before admission (path, key, scope, API, endpoint)
is refused with the HTTP error document where the server supports it, else closed with
the code below.

The client sends the request as its first frame: a text frame holds JSON, a binary frame
the serialized protobuf request (upstreams with descriptors); the answers come back in the
same form, one frame per upstream message. Then, by kind of endpoint:

- server-streaming: one request per socket; the socket closes (1000) when the upstream
  stream ends. The call is charged unless the upstream ends it with an error (then it is
  released); a client leaving early still pays for it. Another message from the client
  closes the socket (4400);
- bidirectional and client-streaming: every client message is admitted and charged like a
  call, once it has been written to the upstream stream;
- unary: every client message is one call, answered by one frame; charged once that
  frame was sent (released if it could not be).

Charges are committed in the background (see :mod:`~m3o.gateway.v1.calls`): a commit
failure releases the call, it never closes the socket.

Errors close the socket with code ``4000 + HTTP status`` (4403, 4429, 4503, ...) and, as
the reason, the error's JSON document when it fits in the 123 bytes a close frame allows,
else its detail (cut to fit).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from m3o.gateway.context import new_request_id, request_id
from m3o.gateway.payload import parse_object
from m3o.gateway.v1.calls import Prepared, PublicCalls
from m3o.gateway.v1.credentials import key_from_headers, websocket_protocol
from m3o.gateway.v1.gate import Admission, Refused
from m3o.gateway.v1.paths import ERROR_ID, raw_call_path
from m3o.gateway.v1.upstream import CRASHED, ONE_REQUEST, Payload, UpstreamStream
from m3o.runtime.errors import BadRequest, Internal, M3OError
from m3o.runtime.logging import get_logger

__all__ = ["CLOSE_NORMAL", "WebsocketCalls", "close_code", "close_reason"]

_log = get_logger(__name__)

CLOSE_NORMAL = 1000
_MAX_REASON = 123


def close_code(error: M3OError) -> int:
    return 4000 + error.code


def _reason(detail: str) -> str:
    encoded = detail.encode("utf-8")[:_MAX_REASON]
    return encoded.decode("utf-8", errors="ignore")


def close_reason(error: M3OError) -> str:
    """The error's JSON document when it fits in a close frame, else its detail (cut)."""
    document = error.to_json()
    if len(document) <= _MAX_REASON:
        return document.decode()
    return _reason(error.detail)


class _Closed(Exception):
    """The client went away."""


@dataclass(eq=False)
class _Socket:
    """One accepted websocket: frames in and out, in the mode of the first frame."""

    websocket: WebSocket
    binary: bool = False

    async def receive(self) -> Mapping[str, Any]:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise _Closed()
        return message

    async def send(self, prepared: Prepared, answer: Payload) -> None:
        try:
            if self.binary:
                await self.websocket.send_bytes(prepared.codec.to_binary(answer))
            else:
                await self.websocket.send_text(prepared.codec.to_json(answer).decode())
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _Closed() from None

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self.websocket.application_state is WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.websocket.close(code, _reason(reason))

    async def fail(self, error: M3OError) -> None:
        await self.close(close_code(error), close_reason(error))


async def _accepted(websocket: WebSocket, rid: str) -> _Socket:
    """The socket accepted, with the request id and (from browsers) the key's subprotocol.

    Refusals are accepted too, so that the client sees their close code and document.
    """
    headers = websocket.headers
    subprotocol = None if "authorization" in headers else websocket_protocol(headers) or None
    await websocket.accept(subprotocol, headers=[(b"x-request-id", rid.encode("latin-1"))])
    return _Socket(websocket)


def _decode(prepared: Prepared, message: Mapping[str, Any]) -> Payload:
    raw = message.get("bytes")
    if raw is not None:
        return prepared.codec.from_binary(raw)
    # A text frame is JSON by definition; it is bounded like an HTTP body (depth, NUL).
    data = parse_object(message.get("text") or "", ERROR_ID, "Request message")
    return prepared.codec.from_json(data)


class WebsocketCalls:
    def __init__(self, calls: PublicCalls) -> None:
        self._calls = calls

    async def handle(self, websocket: WebSocket) -> None:
        rid = request_id(websocket.scope) or new_request_id(None)
        headers = websocket.headers
        try:
            prepared = await self._calls.prepare(
                websocket.scope["path"],
                raw_call_path(websocket.scope),
                key_from_headers(headers, websocket=True),
            )
            metadata = await self._calls.upstream_metadata(prepared, rid)
        except M3OError as error:
            denied = await _accepted(websocket, rid)
            await denied.fail(error)
            return
        socket = await _accepted(websocket, rid)
        session = _Session(self._calls, prepared, metadata, socket, rid)
        try:
            await session.run()
        except _Closed:
            pass
        except M3OError as error:
            await socket.fail(error)
        except Refused as refused:
            await socket.fail(refused.error)
        except Exception as exc:  # noqa: BLE001 - the client always gets a close frame
            _log.error("v1.websocket_failed", path=prepared.path, request_id=rid, exc_info=exc)
            await socket.fail(Internal(ERROR_ID, CRASHED))
        else:
            await socket.close()


class _Session:
    def __init__(
        self,
        calls: PublicCalls,
        prepared: Prepared,
        metadata: dict[str, str],
        socket: _Socket,
        rid: str,
    ) -> None:
        self._calls = calls
        self._prepared = prepared
        self._metadata = metadata
        self._socket = socket
        self._rid = rid

    async def run(self) -> None:
        first = await self._socket.receive()
        self._socket.binary = first.get("bytes") is not None
        target = self._prepared.target
        if not target.streaming:
            await self._unary(first)
        elif target.client_streaming:
            await self._bidirectional(first)
        else:
            await self._server_stream(first)

    async def _admit(self) -> tuple[Admission, float]:
        started = time.perf_counter()
        return await self._calls.admit(self._prepared), started

    async def _unary(self, message: Mapping[str, Any]) -> None:
        calls, prepared = self._calls, self._prepared
        while True:
            payload = _decode(prepared, message)
            admission, started = await self._admit()
            try:
                answer = await calls.forwarders.unary(
                    prepared.target, payload, self._metadata, calls.upstream_timeout
                )
            except asyncio.CancelledError:
                calls.release_later(admission)
                raise
            except Exception as exc:  # noqa: BLE001 - released and mapped
                raise await calls.failed(prepared, admission, exc, self._rid) from None
            try:
                await self._socket.send(prepared, answer)
            except BaseException:
                # The answer may not have gone out: never charged without it.
                calls.release_later(admission)
                raise
            calls.charged(prepared, admission, status=200, started=started, request_id=self._rid)
            message = await self._socket.receive()

    async def _open(self, message: Mapping[str, Any]) -> tuple[UpstreamStream, Admission, float]:
        calls, prepared = self._calls, self._prepared
        payload = _decode(prepared, message)
        admission, started = await self._admit()
        try:
            # A stream lasts as long as both sides keep it: no deadline on the whole call.
            stream = await calls.forwarders.open(prepared.target, payload, self._metadata, None)
        except asyncio.CancelledError:
            calls.release_later(admission)
            raise
        except Exception as exc:  # noqa: BLE001 - released and mapped
            raise await calls.failed(prepared, admission, exc, self._rid) from None
        return stream, admission, started

    async def _pump(self, stream: UpstreamStream) -> None:
        """Upstream messages to the client until the upstream ends the stream."""
        while True:
            answer = await stream.read()
            if answer is None:
                return
            await self._socket.send(self._prepared, answer)

    async def _server_stream(self, first: Mapping[str, Any]) -> None:
        calls, prepared = self._calls, self._prepared
        stream, admission, started = await self._open(first)
        pump = asyncio.create_task(self._pump(stream))
        extra = asyncio.create_task(self._socket.receive())
        try:
            await asyncio.wait({pump, extra}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, extra):
                task.cancel()
            await asyncio.gather(pump, extra, return_exceptions=True)
            await stream.aclose()
        failure = pump.exception() if pump.done() and not pump.cancelled() else None
        if failure is not None and not isinstance(failure, _Closed):
            raise await calls.failed(prepared, admission, failure, self._rid)
        calls.charged(prepared, admission, status=200, started=started, request_id=self._rid)
        if extra.done() and not extra.cancelled() and extra.exception() is None:
            raise BadRequest(ERROR_ID, ONE_REQUEST)

    async def _bidirectional(self, first: Mapping[str, Any]) -> None:
        calls, prepared = self._calls, self._prepared
        stream, admission, started = await self._open(first)
        calls.charged(prepared, admission, status=200, started=started, request_id=self._rid)
        pump = asyncio.create_task(self._pump(stream))
        writer = asyncio.create_task(self._write_all(stream))
        try:
            await asyncio.wait({pump, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, writer):
                task.cancel()
            await asyncio.gather(pump, writer, return_exceptions=True)
            await stream.aclose()
        failure = writer.exception() if writer.done() and not writer.cancelled() else None
        if failure is not None:
            raise failure
        failure = pump.exception() if pump.done() and not pump.cancelled() else None
        if failure is not None and not isinstance(failure, _Closed):
            # The messages written so far reached the upstream: they stay charged.
            raise calls.describe(prepared, failure, self._rid)

    async def _write_all(self, stream: UpstreamStream) -> None:
        """Client messages into the upstream stream, each admitted and charged."""
        calls, prepared = self._calls, self._prepared
        while True:
            payload = _decode(prepared, await self._socket.receive())
            admission, started = await self._admit()
            try:
                await stream.write(payload)
            except asyncio.CancelledError:
                calls.release_later(admission)
                raise
            except Exception as exc:  # noqa: BLE001 - released and mapped
                raise await calls.failed(prepared, admission, exc, self._rid) from None
            calls.charged(prepared, admission, status=200, started=started, request_id=self._rid)
