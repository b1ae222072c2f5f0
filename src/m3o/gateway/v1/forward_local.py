"""Forwarding to a service of the platform itself (``local:<service>``).

The call goes through the runtime :class:`~m3o.runtime.rpc.Transport`: in process in
``m3o serve`` (the same dispatcher, interceptors included, no socket), over gRPC between
pods. Unary and server-streaming methods only, as the transport serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from google.protobuf.message import Message

from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.targets import Target
from m3o.gateway.v1.upstream import ONE_REQUEST, Codec, MessageCodec, Payload, UpstreamStream
from m3o.runtime.errors import BadRequest
from m3o.runtime.rpc import MethodSpec, ServiceSpec, Transport

__all__ = ["LocalForwarder"]

_CLIENT_STREAMING = "Client-streaming methods of platform services are not served"


def _spec(target: Target) -> tuple[ServiceSpec, MethodSpec]:
    if target.local is None:  # pragma: no cover - Targets always sets it for local ones
        raise ValueError(f"{target.api} is not a local upstream")
    return target.local


def _message(payload: Payload) -> Message:
    if isinstance(payload, bytes):  # pragma: no cover - MessageCodec builds messages
        raise TypeError("a local upstream takes protobuf messages")
    return payload


class _ServerStream:
    def __init__(self, messages: AsyncIterator[Message]) -> None:
        self._messages = messages

    async def write(self, message: Payload) -> None:
        raise BadRequest(ERROR_ID, ONE_REQUEST)

    async def done_writing(self) -> None:
        return None

    async def read(self) -> Payload | None:
        try:
            return await anext(self._messages)
        except StopAsyncIteration:
            return None

    async def aclose(self) -> None:
        aclose = getattr(self._messages, "aclose", None)
        if aclose is not None:
            await aclose()


class LocalForwarder:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def codec(self, target: Target) -> Codec:
        _, method = _spec(target)
        return MessageCodec(method.request_type, method.response_type)

    async def unary(
        self,
        target: Target,
        request: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Payload:
        spec, method = _spec(target)
        return await self._transport.unary(
            spec, method, _message(request), metadata=metadata, timeout=timeout
        )

    async def open(
        self,
        target: Target,
        first: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> UpstreamStream:
        spec, method = _spec(target)
        if method.client_streaming:
            raise BadRequest(ERROR_ID, _CLIENT_STREAMING)
        return _ServerStream(
            self._transport.server_stream(
                spec, method, _message(first), metadata=metadata, timeout=timeout
            )
        )

    async def close(self) -> None:
        return None
