"""Fetching a gRPC upstream's descriptors by server reflection.

One bidirectional ``ServerReflectionInfo`` stream: list the services, ask for the file
defining each one, then for every imported file still missing (protobuf's well-known types
excepted: every pool has them). The ``grpc.reflection.v1`` service is asked first, then
``v1alpha`` (older servers, and grpcio's own, serve only that one); both speak the same
messages. The whole exchange has one deadline.

Channels are plaintext: upstreams are reached on the platform's internal network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

__all__ = ["DEFAULT_REFLECTION_TIMEOUT", "ReflectionError", "fetch_descriptors"]

DEFAULT_REFLECTION_TIMEOUT = 5.0
"""Seconds the whole reflection exchange with an upstream may take."""

_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
_PLUMBING_PREFIXES = ("grpc.reflection.", "grpc.health.")
_MAX_FILES = 1000


class ReflectionError(Exception):
    """The upstream could not be described; the message says why, naming it."""


_ATTEMPTS_ON_INTERNAL = 3
"""How often a stream that ends INTERNAL is tried. grpcio reports a call the server ended
while a request was being written as INTERNAL ("Internal error from Core") instead of the
server's own status, most often UNIMPLEMENTED from a server without reflection."""


class _Unimplemented(Exception):
    """The upstream does not serve this version of the reflection service."""


class _Internal(Exception):
    """The stream ended INTERNAL; the message says so, naming the upstream."""


class _Exchange:
    """Request / response pairs over one reflection stream."""

    def __init__(
        self,
        requests: asyncio.Queue[rpb.ServerReflectionRequest],
        responses: AsyncIterator[Any],
        address: str,
    ) -> None:
        self._requests = requests
        self._responses = responses
        self._address = address

    async def ask(self, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
        self._requests.put_nowait(request)
        try:
            response = await anext(self._responses)
        except StopAsyncIteration:
            raise ReflectionError(f"Upstream {self._address} ended the reflection stream") from None
        if not isinstance(response, rpb.ServerReflectionResponse):
            raise ReflectionError(f"Upstream {self._address} answered reflection wrongly")
        if response.HasField("error_response"):
            message = response.error_response.error_message
            raise ReflectionError(f"Upstream {self._address} reflection failed: {message}")
        return response

    async def files(self, request: rpb.ServerReflectionRequest) -> list[bytes]:
        return list((await self.ask(request)).file_descriptor_response.file_descriptor_proto)


async def _drain(
    queue: asyncio.Queue[rpb.ServerReflectionRequest],
) -> AsyncIterator[rpb.ServerReflectionRequest]:
    while True:
        yield await queue.get()


async def _describe(exchange: _Exchange, address: str) -> descriptor_pb2.FileDescriptorSet:
    listed = await exchange.ask(rpb.ServerReflectionRequest(list_services=""))
    names = [
        service.name
        for service in listed.list_services_response.service
        if not service.name.startswith(_PLUMBING_PREFIXES)
    ]
    if not names:
        raise ReflectionError(f"Upstream {address} declares no service")
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def keep(raw_files: list[bytes]) -> None:
        for raw in raw_files:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(proto.name, proto)

    for name in names:
        keep(await exchange.files(rpb.ServerReflectionRequest(file_containing_symbol=name)))
    missing = _missing(files)
    while missing:
        if len(files) > _MAX_FILES:
            raise ReflectionError(f"Upstream {address} describes too many files")
        for name in missing:
            keep(await exchange.files(rpb.ServerReflectionRequest(file_by_filename=name)))
        still = _missing(files)
        if still & missing:
            raise ReflectionError(f"Upstream {address} does not describe {sorted(still)[0]}")
        missing = still
    return descriptor_pb2.FileDescriptorSet(file=list(files.values()))


def _missing(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> set[str]:
    return {
        dependency
        for proto in files.values()
        for dependency in proto.dependency
        if dependency not in files and not dependency.startswith("google/protobuf/")
    }


async def _attempt(
    channel: grpc.aio.Channel, method: str, address: str, timeout: float
) -> descriptor_pb2.FileDescriptorSet:
    stream = channel.stream_stream(
        method,
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    requests: asyncio.Queue[rpb.ServerReflectionRequest] = asyncio.Queue()
    call = stream(_drain(requests), timeout=timeout)
    try:
        return await _describe(_Exchange(requests, call.__aiter__(), address), address)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise _Unimplemented from None
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise ReflectionError(
                f"Upstream {address} did not answer gRPC reflection within {timeout:g}s"
            ) from None
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            raise ReflectionError(f"Upstream {address} is unreachable") from None
        if exc.code() == grpc.StatusCode.INTERNAL:
            raise _Internal(
                f"Upstream {address} reflection failed: INTERNAL {exc.details()}"
            ) from None
        raise ReflectionError(
            f"Upstream {address} reflection failed: {exc.code().name} {exc.details()}"
        ) from None
    finally:
        call.cancel()


async def _attempts(
    channel: grpc.aio.Channel, method: str, address: str, timeout: float
) -> descriptor_pb2.FileDescriptorSet | None:
    """The upstream's files by ``method``; None when it does not serve that method."""
    attempt = 1
    while True:
        try:
            return await _attempt(channel, method, address, timeout)
        except _Unimplemented:
            return None
        except _Internal as exc:
            if attempt == _ATTEMPTS_ON_INTERNAL:
                raise ReflectionError(str(exc)) from None
            attempt += 1


async def fetch_descriptors(address: str, *, timeout: float = DEFAULT_REFLECTION_TIMEOUT) -> bytes:
    """The serialized FileDescriptorSet of the services ``address`` (host:port) serves.

    Raises :class:`ReflectionError` naming the upstream when it cannot be reached in time,
    serves no reflection, or describes itself incompletely.
    """
    async with grpc.aio.insecure_channel(address) as channel:
        for method in _METHODS:
            found = await _attempts(channel, method, address, timeout)
            if found is not None:
                return found.SerializeToString()
    raise ReflectionError(
        f"Upstream {address} does not serve gRPC reflection; publish its descriptors instead"
    )
