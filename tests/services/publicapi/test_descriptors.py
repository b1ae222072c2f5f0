"""Descriptors: parsing, resolving imports, the endpoints declared."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from m3o.services.helloworld.proto import helloworld_pb2
from m3o.services.publicapi.descriptors import DescriptorError, Descriptors, Endpoint
from services.publicapi.support import HELLOWORLD, compile_proto


def file_proto(module_descriptor: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module_descriptor.CopyToProto(proto)  # type: ignore[attr-defined]
    return proto


def descriptor_set(*files: descriptor_pb2.FileDescriptorProto) -> bytes:
    return descriptor_pb2.FileDescriptorSet(file=list(files)).SerializeToString()


def test_helloworld_declares_call_and_a_server_streaming_stream() -> None:
    parsed = Descriptors(HELLOWORLD)
    assert parsed.endpoints == [
        Endpoint("Helloworld.Call", "helloworld.Helloworld", "Call",
                 "helloworld.CallRequest", "helloworld.CallResponse"),
        Endpoint("Helloworld.Stream", "helloworld.Helloworld", "Stream",
                 "helloworld.StreamRequest", "helloworld.StreamResponse", server_streaming=True),
    ]  # fmt: skip
    assert parsed.endpoints[1].grpc_path == "/helloworld.Helloworld/Stream"
    assert parsed.endpoints[1].streaming
    assert not parsed.endpoints[0].streaming
    request = parsed.pool.FindMessageTypeByName("helloworld.StreamRequest")
    assert [f.name for f in request.fields] == ["name", "messages"]


def test_a_compiled_set_resolves_well_known_imports(two_services: bytes) -> None:
    parsed = Descriptors(two_services)
    assert [e.name for e in parsed.endpoints] == [
        "Greeter.Greet", "Helloworld.Call", "Helloworld.Chat"
    ]  # fmt: skip
    chat = parsed.endpoints[2]
    assert chat.client_streaming and chat.server_streaming
    at = parsed.pool.FindMessageTypeByName("helloworld.CallRequest").fields_by_name["at"]
    assert at.message_type.full_name == "google.protobuf.Timestamp"


def test_a_set_missing_an_imported_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dep").mkdir()
    (tmp_path / "dep" / "types.proto").write_text(
        'syntax = "proto3";\npackage dep;\nmessage Thing { string id = 1; }\n'
    )
    raw = compile_proto(
        tmp_path,
        'syntax = "proto3";\npackage main;\nimport "dep/types.proto";\n'
        "service Main { rpc Get(dep.Thing) returns (dep.Thing); }\n",
        name="main.proto",
    )
    with pytest.raises(DescriptorError) as caught:
        Descriptors(raw)
    assert str(caught.value) == "main.proto imports dep/types.proto, which the descriptors lack"


def test_files_may_come_in_any_order(tmp_path: Path) -> None:
    dependency = descriptor_pb2.FileDescriptorProto(
        name="dep.proto", package="dep", syntax="proto3",
        message_type=[descriptor_pb2.DescriptorProto(name="Thing")],
    )  # fmt: skip
    main = descriptor_pb2.FileDescriptorProto(
        name="main.proto", package="main", syntax="proto3", dependency=["dep.proto"],
        service=[descriptor_pb2.ServiceDescriptorProto(name="Main", method=[
            descriptor_pb2.MethodDescriptorProto(name="Get", input_type=".dep.Thing",
                                                 output_type=".dep.Thing")])],
    )  # fmt: skip
    parsed = Descriptors(descriptor_set(main, dependency))
    assert [e.name for e in parsed.endpoints] == ["Main.Get"]


def test_grpc_plumbing_services_are_not_endpoints() -> None:
    raw = descriptor_set(
        file_proto(helloworld_pb2.DESCRIPTOR), file_proto(reflection_pb2.DESCRIPTOR)
    )
    assert [e.name for e in Descriptors(raw).endpoints] == ["Helloworld.Call", "Helloworld.Stream"]


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"\xff\xff", "descriptors are not a serialized FileDescriptorSet"),
        (b"", "descriptors hold no file"),
        (descriptor_set(descriptor_pb2.FileDescriptorProto()),
         "descriptors hold a file without a name"),
        (
            descriptor_set(descriptor_pb2.FileDescriptorProto(
                name="bad.proto", message_type=[descriptor_pb2.DescriptorProto(
                    name="M", field=[descriptor_pb2.FieldDescriptorProto(
                        name="f", number=1, type=11, type_name=".nope.X")])])),
            "bad.proto: couldn't resolve name '.nope.X'",
        ),
        (
            descriptor_set(
                descriptor_pb2.FileDescriptorProto(name="a.proto", dependency=["b.proto"]),
                descriptor_pb2.FileDescriptorProto(name="b.proto", dependency=["a.proto"]),
            ),
            "descriptors import a.proto in a cycle",
        ),
    ],
    ids=["garbage", "empty", "nameless", "unresolved", "cycle"],
)  # fmt: skip
def test_unusable_sets_are_refused_saying_why(raw: bytes, detail: str) -> None:
    with pytest.raises(DescriptorError) as caught:
        Descriptors(raw)
    assert str(caught.value) == detail


def test_two_services_of_one_short_name_are_refused() -> None:
    def service_file(package: str) -> descriptor_pb2.FileDescriptorProto:
        return descriptor_pb2.FileDescriptorProto(
            name=f"{package}.proto", package=package, syntax="proto3",
            message_type=[descriptor_pb2.DescriptorProto(name="M")],
            service=[descriptor_pb2.ServiceDescriptorProto(name="Api", method=[
                descriptor_pb2.MethodDescriptorProto(name="Get", input_type=f".{package}.M",
                                                     output_type=f".{package}.M")])],
        )  # fmt: skip

    with pytest.raises(DescriptorError) as caught:
        Descriptors(descriptor_set(service_file("one"), service_file("two")))
    assert str(caught.value) == "services one.Api and two.Api share the name Api"
