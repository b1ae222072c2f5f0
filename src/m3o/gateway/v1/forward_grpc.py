"""Forwarding to a gRPC upstream with messages built from its descriptors.

No generated code: the request and response classes come from the catalog entry's
descriptor pool, and calls are ``grpc.aio`` generic calls on the method's path
(``/helloworld.Helloworld/Call``). One channel per upstream address, opened on first use
and closed at shut-down; unary calls in flight are bounded per channel (``grpc.aio``
cancels calls when thousands are outstanding on one channel). Plain-text connections
only for now (upstreams live on the cluster's network).

An answer (a message of a stream too) is at most ``max_answer_bytes`` (``v1.max_answer_bytes``,
as for HTTP upstreams; grpc's own default is 4 MiB). grpc refuses a longer one with
``RESOURCE_EXHAUSTED``, which on its own would reach the caller as 429, as if the upstream
had refused the call: it is told apart by grpc's own description of the refusal (a test
pins it) and is the upstream's crash, uncharged, as with HTTP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message
from grpc.aio import EOF  # type: ignore[attr-defined]  # missing from the stubs

from m3o.gateway.v1.http_client import MAX_ANSWER_BYTES
from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.targets import UNAVAILABLE_API, Target
from m3o.gateway.v1.upstream import (
    ONE_REQUEST,
    Codec,
    MessageCodec,
    Payload,
    UpstreamStream,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from m3o.runtime.errors import BadRequest, Internal, Unavailable, error_from_grpc
from m3o.runtime.rpc import RECONNECT_OPTIONS

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "GrpcForwarder", "upstream_failure"]

DEFAULT_MAX_IN_FLIGHT = 512


_TOO_LARGE = re.compile(r"Received message larger than max \((\d+) vs\. (\d+)\)")
"""How grpc describes a message it refused for its size: its length, then the limit."""


def upstream_failure(exc: grpc.aio.AioRpcError, max_answer_bytes: int) -> BaseException:
    """What a failed gRPC call raises in the gateway (see :mod:`.upstream`); an answer
    grpc refused at ``max_answer_bytes`` (our limit, not the upstream's) is a crash."""
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        refused = _TOO_LARGE.search(details)
        if refused is not None and int(refused.group(2)) == max_answer_bytes:
            return Internal(ERROR_ID, f"answer of {refused.group(1)} bytes past the limit")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return UpstreamUnreachable(details)
    return error_from_grpc(code, details, ERROR_ID)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


@dataclass
class _Channel:
    channel: grpc.aio.Channel
    limit: asyncio.Semaphore
    callables: dict[tuple[str, str, type[Message]], Any] = field(default_factory=dict)


class _Stream:
    """A streaming call: server-streaming (request given at start) or with a request
    stream (bidirectional and client-streaming, both served as a stream-stream call)."""

    def __init__(self, call: Any, writable: bool, max_answer_bytes: int) -> None:
        self._call = call
        self._writable = writable
        self._max_answer_bytes = max_answer_bytes

    async def write(self, message: Payload) -> None:
        if not self._writable:
            raise BadRequest(ERROR_ID, ONE_REQUEST)
        try:
            await self._call.write(message)
        except grpc.aio.AioRpcError as exc:
            raise upstream_failure(exc, self._max_answer_bytes) from None

    async def done_writing(self) -> None:
        if self._writable:
            await self._call.done_writing()

    async def read(self) -> Payload | None:
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise upstream_failure(exc, self._max_answer_bytes) from None
        if message is EOF:
            return None
        if not isinstance(message, Message):  # pragma: no cover - the deserializer's type
            raise TypeError("unexpected message from the upstream")
        return message

    async def aclose(self) -> None:
        self._call.cancel()


class GrpcForwarder:
    def __init__(
        self,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._max_in_flight = max_in_flight
        self._max_answer_bytes = max_answer_bytes
        # An upstream back after a restart is tried again within half a second: calls do
        # not wait for a reconnecting channel, so with gRPC's default backoff they failed
        # for up to two minutes while it was serving.
        self._options = (
            ("grpc.max_receive_message_length", max_answer_bytes),
            *RECONNECT_OPTIONS,
            *options,
        )
        self._channels: dict[str, _Channel] = {}

    def _channel(self, address: str) -> _Channel:
        found = self._channels.get(address)
        if found is None:
            channel = grpc.aio.insecure_channel(address, options=self._options)
            found = _Channel(channel, asyncio.Semaphore(self._max_in_flight))
            self._channels[address] = found
        return found

    def codec(self, target: Target) -> Codec:
        return self._codec(target)

    def _codec(self, target: Target) -> MessageCodec:
        pool = target.entry.pool
        if pool is None:
            raise Unavailable(ERROR_ID, UNAVAILABLE_API)
        try:
            request = pool.FindMessageTypeByName(target.request_type)
            response = pool.FindMessageTypeByName(target.response_type)
        except KeyError:
            raise Unavailable(ERROR_ID, UNAVAILABLE_API) from None
        return MessageCodec(
            message_factory.GetMessageClass(request), message_factory.GetMessageClass(response)
        )

    def _callable(self, target: Target, kind: str, response: type[Message]) -> Any:
        channel = self._channel(target.address)
        path = f"/{target.service}/{target.method}"
        key = (kind, path, response)
        found = channel.callables.get(key)
        if found is None:
            factory = getattr(channel.channel, kind)
            found = factory(
                path, request_serializer=_serialize, response_deserializer=response.FromString
            )
            channel.callables[key] = found
        return found

    async def unary(
        self,
        target: Target,
        request: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Payload:
        codec = self._codec(target)
        call = self._callable(target, "unary_unary", codec.response_type)
        async with self._channel(target.address).limit:
            try:
                response: Message = await call(
                    request, metadata=tuple(metadata.items()), timeout=timeout
                )
            except grpc.aio.AioRpcError as exc:
                raise upstream_failure(exc, self._max_answer_bytes) from None
        return response

    async def open(
        self,
        target: Target,
        first: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> UpstreamStream:
        codec = self._codec(target)
        items = tuple(metadata.items())
        if not target.client_streaming:
            call = self._callable(target, "unary_stream", codec.response_type)
            return _Stream(
                call(first, metadata=items, timeout=timeout), False, self._max_answer_bytes
            )
        call = self._callable(target, "stream_stream", codec.response_type)
        stream = _Stream(call(metadata=items, timeout=timeout), True, self._max_answer_bytes)
        await stream.write(first)
        return stream

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.channel.close(grace=None)
