"""The comments of a ``.proto`` file, by the full name of what each describes.

They come from the ``source_code_info`` that ``protoc --include_source_info`` keeps (generated
``*_pb2`` modules, reflection and ``DESCRIPTOR`` drop it). Names are ``package.Message``,
``package.Message.field``, ``package.Message.oneof``, ``package.Message.Nested``,
``package.Enum``, ``package.Enum.VALUE`` (a value under its enum, unlike its protobuf full
name), ``package.Service`` and ``package.Service.Method``; the entry messages protoc makes
for map fields have none. Which comment of a location counts, and how its text is laid out,
is the caller's: a ``text(location)`` callable.

Used by ``m3o gen``, which writes each ``<stem>.proto``'s comments beside its generated code
as ``COMMENTS`` in ``<stem>_pb2_comments.py`` (read back by :func:`generated_comments` for
the platform API's OpenAPI document), and by the publicapi service (the comments of an
uploaded descriptor set).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from google.protobuf import descriptor_pb2

__all__ = [
    "GENERATED_SUFFIX",
    "Location",
    "LocationText",
    "comments_by_name",
    "generated_comments",
]

GENERATED_SUFFIX = "_pb2_comments"
"""``m3o gen`` writes the comments of ``<stem>.proto`` to the module ``<stem>_pb2_comments``."""

Location = descriptor_pb2.SourceCodeInfo.Location
LocationText = Callable[[Location], str]
"""The comment of one location as the caller keeps it; empty for none."""

Path = tuple[int, ...]

# Field numbers of FileDescriptorProto, DescriptorProto, EnumDescriptorProto and
# ServiceDescriptorProto that source_code_info paths are made of.
_FILE_MESSAGES = 4
_FILE_ENUMS = 5
_FILE_SERVICES = 6
_MESSAGE_FIELDS = 2
_MESSAGE_NESTED = 3
_MESSAGE_ENUMS = 4
_MESSAGE_ONEOFS = 8
_ENUM_VALUES = 2
_SERVICE_METHODS = 2


class _Walk:
    def __init__(self, file: descriptor_pb2.FileDescriptorProto, text: LocationText) -> None:
        self.texts: dict[Path, str] = {}
        for location in file.source_code_info.location:
            found = text(location)
            if found:
                self.texts[tuple(location.path)] = found
        self.found: dict[str, str] = {}

    def put(self, name: str, path: Path) -> None:
        text = self.texts.get(path)
        if text:
            self.found[name] = text

    def enum(self, enum: descriptor_pb2.EnumDescriptorProto, prefix: str, path: Path) -> None:
        name = _join(prefix, enum.name)
        self.put(name, path)
        for i, value in enumerate(enum.value):
            self.put(_join(name, value.name), (*path, _ENUM_VALUES, i))

    def message(self, message: descriptor_pb2.DescriptorProto, prefix: str, path: Path) -> None:
        name = _join(prefix, message.name)
        self.put(name, path)
        for i, field in enumerate(message.field):
            self.put(_join(name, field.name), (*path, _MESSAGE_FIELDS, i))
        for i, oneof in enumerate(message.oneof_decl):
            self.put(_join(name, oneof.name), (*path, _MESSAGE_ONEOFS, i))
        for i, nested in enumerate(message.nested_type):
            if not nested.options.map_entry:
                self.message(nested, name, (*path, _MESSAGE_NESTED, i))
        for i, enum in enumerate(message.enum_type):
            self.enum(enum, name, (*path, _MESSAGE_ENUMS, i))

    def service(self, service: descriptor_pb2.ServiceDescriptorProto, prefix: str, i: int) -> None:
        name = _join(prefix, service.name)
        self.put(name, (_FILE_SERVICES, i))
        for j, method in enumerate(service.method):
            self.put(_join(name, method.name), (_FILE_SERVICES, i, _SERVICE_METHODS, j))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def comments_by_name(
    file: descriptor_pb2.FileDescriptorProto, text: LocationText
) -> dict[str, str]:
    """Full name -> comment of each message, field, oneof, enum, enum value, service and
    method of ``file`` that ``text`` finds a comment for."""
    walk = _Walk(file, text)
    if not walk.texts:
        return {}
    for i, message in enumerate(file.message_type):
        walk.message(message, file.package, (_FILE_MESSAGES, i))
    for i, enum in enumerate(file.enum_type):
        walk.enum(enum, file.package, (_FILE_ENUMS, i))
    for i, service in enumerate(file.service):
        walk.service(service, file.package, i)
    return walk.found


def generated_comments(file_name: str) -> Mapping[str, str]:
    """The ``COMMENTS`` ``m3o gen`` wrote for the ``.proto`` file ``file_name``
    (``m3o/services/x/proto/x.proto``: the module ``m3o.services.x.proto.x_pb2_comments``);
    nothing for a file it did not generate, or one outside the ``m3o`` package."""
    module = file_name.removesuffix(".proto").replace("/", ".") + GENERATED_SUFFIX
    parts = module.split(".")
    if not file_name.endswith(".proto") or parts[0] != "m3o":
        return {}
    if not all(part.isidentifier() for part in parts):
        return {}
    try:
        found: Mapping[str, str] = importlib.import_module(module).COMMENTS
    except ModuleNotFoundError:
        return {}
    return found
