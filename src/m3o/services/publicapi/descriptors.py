"""An API's protobuf descriptors: the uploaded FileDescriptorSet and what it declares.

An entry stores its upstream's descriptors as a serialized
``google.protobuf.FileDescriptorSet``. Files it imports but does not carry are taken from
protobuf's own well-known types (``google/protobuf/timestamp.proto``, ...); anything else
missing makes the set invalid. The services of gRPC's own plumbing (reflection, health)
are not part of an API.

An endpoint is named ``<Service>.<Method>`` with the service's short name
(``Helloworld.Call``), as pricing and quotas name it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf import (
    any_pb2,
    api_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError

__all__ = [
    "DescriptorError",
    "Descriptors",
    "Endpoint",
]

_PLUMBING_PREFIXES = ("grpc.reflection.", "grpc.health.")

# Importing them puts protobuf's well-known files in the default pool, where imports that
# a descriptor set does not carry are looked up.
_WELL_KNOWN_MODULES = (
    any_pb2, api_pb2, descriptor_pb2, duration_pb2, empty_pb2, field_mask_pb2,
    source_context_pb2, struct_pb2, timestamp_pb2, type_pb2, wrappers_pb2,
)  # fmt: skip


class DescriptorError(ValueError):
    """The descriptors cannot be used; the message says why, for the publisher."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method of an API's upstream."""

    name: str
    """``<Service>.<Method>`` (``Helloworld.Call``)."""
    service: str
    """The service's full protobuf name (``helloworld.Helloworld``)."""
    method: str
    """The method's name (``Call``)."""
    request_type: str
    """Full protobuf name of the request message."""
    response_type: str
    """Full protobuf name of the response message."""
    client_streaming: bool = False
    server_streaming: bool = False

    @property
    def grpc_path(self) -> str:
        """The method's gRPC path (``/helloworld.Helloworld/Call``)."""
        return f"/{self.service}/{self.method}"

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming


def _parse(raw: bytes) -> descriptor_pb2.FileDescriptorSet:
    try:
        found = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except DecodeError:
        raise DescriptorError("descriptors are not a serialized FileDescriptorSet") from None
    if not found.file:
        raise DescriptorError("descriptors hold no file")
    return found


def _well_known(name: str) -> descriptor_pb2.FileDescriptorProto | None:
    if not name.startswith("google/protobuf/"):
        return None
    try:
        found = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        return None
    proto = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(proto)
    return proto


class _PoolBuilder:
    """Adds files to a fresh pool, each after the files it imports."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for file in files:
            if not file.name:
                raise DescriptorError("descriptors hold a file without a name")
            self._files.setdefault(file.name, file)
        self._added: dict[str, FileDescriptor] = {}
        self._adding: set[str] = set()

    def add(self, name: str, imported_by: str = "") -> FileDescriptor:
        done = self._added.get(name)
        if done is not None:
            return done
        if name in self._adding:
            raise DescriptorError(f"descriptors import {name} in a cycle")
        proto = self._files.get(name) or _well_known(name)
        if proto is None:
            raise DescriptorError(f"{imported_by} imports {name}, which the descriptors lack")
        self._adding.add(name)
        for dependency in proto.dependency:
            self.add(dependency, imported_by=name)
        try:
            added = self.pool.AddSerializedFile(proto.SerializeToString())
        except TypeError as exc:
            raise DescriptorError(f"{name}: {_reason(exc)}") from None
        self._adding.discard(name)
        self._added[name] = added
        return added

    def add_all(self) -> list[FileDescriptor]:
        return [self.add(name) for name in self._files]


def _reason(exc: TypeError) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("Couldn't build") and ": " in text else text


class Descriptors:
    """A parsed, resolved FileDescriptorSet: its pool, services and endpoints.

    Raises :class:`DescriptorError` when ``raw`` is not a usable set.
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.files = _parse(raw)
        builder = _PoolBuilder(self.files.file)
        self._file_descriptors = builder.add_all()
        self.pool: descriptor_pool.DescriptorPool = builder.pool
        self.services: list[ServiceDescriptor] = [
            service
            for file in self._file_descriptors
            for service in file.services_by_name.values()
            if not service.full_name.startswith(_PLUMBING_PREFIXES)
        ]
        self.endpoints: list[Endpoint] = _endpoints(self.services)

    def source(self, file_name: str) -> descriptor_pb2.FileDescriptorProto | None:
        """The uploaded proto of ``file_name`` (for its comments), if the set carries it."""
        for file in self.files.file:
            if file.name == file_name:
                return file
        return None


def _endpoints(services: list[ServiceDescriptor]) -> list[Endpoint]:
    owners: dict[str, str] = {}
    found: list[Endpoint] = []
    for service in services:
        other = owners.setdefault(service.name.lower(), service.full_name)
        if other != service.full_name:
            raise DescriptorError(
                f"services {other} and {service.full_name} share the name {service.name}"
            )
        for method in service.methods:
            found.append(
                Endpoint(
                    name=f"{service.name}.{method.name}",
                    service=service.full_name,
                    method=method.name,
                    request_type=method.input_type.full_name,
                    response_type=method.output_type.full_name,
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                )
            )
    return sorted(found, key=lambda endpoint: endpoint.name)
