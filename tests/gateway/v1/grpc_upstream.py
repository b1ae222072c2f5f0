"""A real gRPC upstream for the gateway's tests, with no generated code.

``lab.Echo`` (file ``lab/echo.proto``): ``Call`` (unary), ``Count`` (server-streaming) and
``Chat`` (bidirectional). Requests may ask for a delay or a failure; replies carry the
metadata the upstream received, so tests see what the gateway sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

__all__ = ["EchoUpstream", "echo_file", "serve_echo"]


def echo_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="lab/echo.proto", package="lab", syntax="proto3")
    request = file.message_type.add(name="EchoRequest")
    for number, (name, kind) in enumerate(
        [
            ("name", f.TYPE_STRING),
            ("count", f.TYPE_INT32),
            ("sleep_ms", f.TYPE_INT32),
            ("fail_code", f.TYPE_INT32),
            ("fail_after", f.TYPE_INT32),
            ("big", f.TYPE_INT64),
        ],
        start=1,
    ):
        request.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    reply = file.message_type.add(name="EchoReply")
    for number, (name, kind) in enumerate(
        [
            ("message", f.TYPE_STRING),
            ("authorization", f.TYPE_STRING),
            ("request_id", f.TYPE_STRING),
            ("index", f.TYPE_INT32),
            ("big", f.TYPE_INT64),
        ],
        start=1,
    ):
        reply.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    service = file.service.add(name="Echo")
    service.method.add(name="Call", input_type=".lab.EchoRequest", output_type=".lab.EchoReply")
    service.method.add(
        name="Count",
        input_type=".lab.EchoRequest",
        output_type=".lab.EchoReply",
        server_streaming=True,
    )
    service.method.add(
        name="Chat",
        input_type=".lab.EchoRequest",
        output_type=".lab.EchoReply",
        client_streaming=True,
        server_streaming=True,
    )
    return file


def _classes() -> tuple[type[Message], type[Message]]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(echo_file().SerializeToString())
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("lab.EchoRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("lab.EchoReply")),
    )


REQUEST, REPLY = _classes()


@dataclass
class EchoUpstream:
    address: str = ""
    calls: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    chat_ended: asyncio.Event = field(default_factory=asyncio.Event)

    def _reply(self, request: Any, metadata: dict[str, str], **extra: Any) -> Any:
        return REPLY(
            message=f"Hello {request.name}",
            authorization=metadata.get("authorization", ""),
            request_id=metadata.get("x-request-id", ""),
            big=request.big,
            **extra,
        )

    async def _prelude(self, name: str, request: Any, context: Any) -> dict[str, str]:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        self.calls.append((name, request, metadata))
        if request.sleep_ms:
            await asyncio.sleep(request.sleep_ms / 1000)
        if request.fail_code and not request.fail_after:
            await context.abort(_status(request.fail_code), f"failed {request.name}")
        return metadata

    async def call(self, request: Any, context: Any) -> Any:
        metadata = await self._prelude("Call", request, context)
        return self._reply(request, metadata)

    async def count(self, request: Any, context: Any) -> AsyncIterator[Any]:
        metadata = await self._prelude("Count", request, context)
        for index in range(request.count):
            if request.fail_code and index == request.fail_after:
                await context.abort(_status(request.fail_code), "stream failed")
            yield self._reply(request, metadata, index=index)
            await asyncio.sleep(0)

    async def chat(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        index = 0
        try:
            async for request in requests:
                self.calls.append(("Chat", request, metadata))
                if request.fail_code:
                    await context.abort(_status(request.fail_code), "chat failed")
                yield self._reply(request, metadata, index=index)
                index += 1
        finally:
            self.chat_ended.set()


def _status(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    raise ValueError(number)


@asynccontextmanager
async def serve_echo(port: int = 0) -> AsyncIterator[EchoUpstream]:
    """The echo upstream on ``port`` of 127.0.0.1 (0: one the system picks)."""
    upstream = EchoUpstream()
    server = grpc.aio.server()
    handlers = {
        "Call": grpc.unary_unary_rpc_method_handler(
            upstream.call,
            request_deserializer=REQUEST.FromString,
            response_serializer=REPLY.SerializeToString,
        ),
        "Count": grpc.unary_stream_rpc_method_handler(
            upstream.count,
            request_deserializer=REQUEST.FromString,
            response_serializer=REPLY.SerializeToString,
        ),
        "Chat": grpc.stream_stream_rpc_method_handler(
            upstream.chat,
            request_deserializer=REQUEST.FromString,
            response_serializer=REPLY.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("lab.Echo", handlers)])
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    upstream.address = f"127.0.0.1:{port}"
    try:
        yield upstream
    finally:
        await server.stop(grace=None)
