"""Descriptors by gRPC reflection, against real grpc.aio servers started by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import BadRequest
from m3o.runtime.rpc import Dispatcher, grpc_handlers
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto.client import SPEC
from m3o.services.publicapi.descriptors import Descriptors
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.reflection import ReflectionError, fetch_descriptors
from services.publicapi.support import HELLOWORLD, call
from support.ports import closed_port

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"


async def serve(*handlers: grpc.GenericRpcHandler[Any, Any]) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def helloworld_handler() -> grpc.GenericRpcHandler[Any, Any]:
    return grpc_handlers(Dispatcher(SPEC, Helloworld(), authenticator=None, rules=None))


class FilePerAnswer:
    """A reflection service answering each file request with that one file only (as some
    servers do), so imports must be asked for by name. Counts the requests it gets."""

    def __init__(self, services: Iterable[str], files: Iterable[bytes]) -> None:
        self.services = list(services)
        self.files = {descriptor_pb2.FileDescriptorProto.FromString(f).name: f for f in files}
        self.requests: list[rpb.ServerReflectionRequest] = []

    def _file_with(self, symbol: str) -> bytes | None:
        for raw in self.files.values():
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            names = {f"{proto.package}.{s.name}" for s in proto.service}
            if symbol in names:
                return raw
        return None

    def _answer(self, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
        if request.HasField("list_services"):
            listed = rpb.ListServiceResponse(
                service=[rpb.ServiceResponse(name=name) for name in self.services]
            )
            return rpb.ServerReflectionResponse(list_services_response=listed)
        raw = (
            self._file_with(request.file_containing_symbol)
            if request.HasField("file_containing_symbol")
            else self.files.get(request.file_by_filename)
        )
        if raw is None:
            return rpb.ServerReflectionResponse(
                error_response=rpb.ErrorResponse(error_code=5, error_message="not found")
            )
        return rpb.ServerReflectionResponse(
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=[raw])
        )

    async def info(
        self, requests: AsyncIterator[rpb.ServerReflectionRequest], _context: object
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        async for request in requests:
            self.requests.append(request)
            yield self._answer(request)

    def handler(self, service: str = V1) -> grpc.GenericRpcHandler[Any, Any]:
        method = grpc.stream_stream_rpc_method_handler(
            self.info,
            request_deserializer=rpb.ServerReflectionRequest.FromString,
            response_serializer=rpb.ServerReflectionResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": method})


def layered_files() -> list[bytes]:
    """main.proto (service main.Main) importing dep.proto, which imports a well-known file."""
    dep = descriptor_pb2.FileDescriptorProto(
        name="dep.proto", package="dep", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
        message_type=[descriptor_pb2.DescriptorProto(name="Thing", field=[
            descriptor_pb2.FieldDescriptorProto(
                name="at", number=1, type=11, label=1, type_name=".google.protobuf.Timestamp")])],
    )  # fmt: skip
    main = descriptor_pb2.FileDescriptorProto(
        name="main.proto", package="main", syntax="proto3", dependency=["dep.proto"],
        service=[descriptor_pb2.ServiceDescriptorProto(name="Main", method=[
            descriptor_pb2.MethodDescriptorProto(
                name="Get", input_type=".dep.Thing", output_type=".dep.Thing")])],
    )  # fmt: skip
    return [main.SerializeToString(), dep.SerializeToString()]


async def test_reflection_describes_helloworld_served_with_grpcio_reflection() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((helloworld_handler(),))
    reflection.enable_server_reflection([SPEC.full_name, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        raw = await fetch_descriptors(f"127.0.0.1:{port}", timeout=5)
    finally:
        await server.stop(None)
    assert Descriptors(raw).endpoints == Descriptors(HELLOWORLD).endpoints


async def test_reflection_asks_v1_first_and_fetches_imports_by_name() -> None:
    double = FilePerAnswer(["main.Main", V1], layered_files())
    server, address = await serve(double.handler(V1))
    try:
        raw = await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    parsed = Descriptors(raw)
    assert [e.name for e in parsed.endpoints] == ["Main.Get"]
    thing = parsed.pool.FindMessageTypeByName("dep.Thing")
    assert thing.fields_by_name["at"].message_type.full_name == "google.protobuf.Timestamp"
    asked = [r.WhichOneof("message_request") for r in double.requests]
    assert asked == ["list_services", "file_containing_symbol", "file_by_filename"]
    assert double.requests[2].file_by_filename == "dep.proto"


async def test_reflection_falls_back_to_v1alpha() -> None:
    double = FilePerAnswer(["main.Main"], layered_files())
    server, address = await serve(double.handler(V1ALPHA))
    try:
        raw = await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    assert [e.name for e in Descriptors(raw).endpoints] == ["Main.Get"]


class FailingFirst(FilePerAnswer):
    """Ends the first ``failures`` streams INTERNAL, then answers as FilePerAnswer."""

    def __init__(self, failures: int) -> None:
        super().__init__(["main.Main"], layered_files())
        self.failures = failures
        self.streams = 0

    async def info(
        self, requests: AsyncIterator[rpb.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        self.streams += 1
        if self.streams <= self.failures:
            # Fail on the first request, as a real upstream does: aborting before the
            # client's request has arrived races its write, and gRPC may then report the
            # reset stream ("Internal error from Core") instead of this status.
            await anext(requests)
            await context.abort(grpc.StatusCode.INTERNAL, "broken")
        async for response in super().info(requests, context):
            yield response


async def test_a_stream_ended_internal_is_asked_again() -> None:
    double = FailingFirst(failures=2)
    server, address = await serve(double.handler())
    try:
        raw = await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    assert [e.name for e in Descriptors(raw).endpoints] == ["Main.Get"]
    assert double.streams == 3


async def test_reflection_ending_internal_every_time_fails_naming_the_upstream() -> None:
    double = FailingFirst(failures=100)
    server, address = await serve(double.handler())
    try:
        with pytest.raises(ReflectionError) as caught:
            await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    assert str(caught.value) == f"Upstream {address} reflection failed: INTERNAL broken"
    assert double.streams == 3


async def test_reflection_missing_an_imported_file_fails_naming_the_upstream() -> None:
    double = FilePerAnswer(["main.Main"], layered_files()[:1])
    server, address = await serve(double.handler())
    try:
        with pytest.raises(ReflectionError) as caught:
            await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    assert str(caught.value) == f"Upstream {address} reflection failed: not found"


async def test_reflection_of_an_upstream_with_no_service_fails() -> None:
    double = FilePerAnswer([V1, "grpc.health.v1.Health"], [])
    server, address = await serve(double.handler())
    try:
        with pytest.raises(ReflectionError) as caught:
            await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    assert str(caught.value) == f"Upstream {address} declares no service"


async def test_reflection_of_an_unreachable_upstream_fails_naming_it() -> None:
    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(ReflectionError) as caught:
        await fetch_descriptors(address, timeout=5)
    assert str(caught.value) == f"Upstream {address} is unreachable"


async def test_reflection_of_a_server_without_it_fails_saying_so() -> None:
    server, address = await serve(helloworld_handler())
    try:
        with pytest.raises(ReflectionError) as caught:
            await fetch_descriptors(address, timeout=5)
    finally:
        await server.stop(None)
    assert str(caught.value) == (
        f"Upstream {address} does not serve gRPC reflection; publish its descriptors instead"
    )


async def test_reflection_gives_up_at_its_deadline() -> None:
    async def hang(
        requests: AsyncIterator[rpb.ServerReflectionRequest], _context: object
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        await asyncio.sleep(30)
        yield rpb.ServerReflectionResponse()

    method = grpc.stream_stream_rpc_method_handler(
        hang,
        request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString,
    )
    server, address = await serve(
        grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": method})
    )
    try:
        with pytest.raises(ReflectionError) as caught:
            await fetch_descriptors(address, timeout=0.3)
    finally:
        await server.stop(None)
    assert str(caught.value) == f"Upstream {address} did not answer gRPC reflection within 0.3s"


async def test_publish_of_a_grpc_upstream_fetches_its_descriptors_by_reflection(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((helloworld_handler(),))
    reflection.enable_server_reflection([SPEC.full_name, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    handler = Publicapi(
        sessions=sessions,
        publisher=FakePublisher(),
        counters=SqlCounterStore(engine),
        fetch_descriptors=fetch_descriptors,
    )
    entry = pb.PublicAPI(name="hello", upstream=pb.Upstream(address=f"127.0.0.1:{port}"))
    try:
        published = (await handler.publish(pb.PublishRequest(api=entry), call("Publish"))).api
    finally:
        await server.stop(None)
    assert [e.name for e in published.endpoints] == ["Helloworld.Call", "Helloworld.Stream"]

    address = f"127.0.0.1:{closed_port()}"
    entry = pb.PublicAPI(name="gone", upstream=pb.Upstream(address=address))
    with pytest.raises(BadRequest) as caught:
        await handler.publish(pb.PublishRequest(api=entry), call("Publish"))
    assert caught.value == BadRequest("publicapi.publish", f"Upstream {address} is unreachable")
