"""Comments of an uploaded ``.proto`` file, from its descriptor's ``source_code_info``.

``protoc --include_source_info`` keeps them; reflection and ``DESCRIPTOR`` of generated
modules do not, so an API without them simply gets a document without descriptions.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

__all__ = ["comments_of"]

# Field numbers of FileDescriptorProto / DescriptorProto / ServiceDescriptorProto that
# source_code_info paths are made of.
_FILE_MESSAGES = 4
_FILE_ENUMS = 5
_FILE_SERVICES = 6
_MESSAGE_FIELDS = 2
_MESSAGE_NESTED = 3
_MESSAGE_ENUMS = 4
_SERVICE_METHODS = 2

Path = tuple[int, ...]


def _by_path(file: descriptor_pb2.FileDescriptorProto) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for location in file.source_code_info.location:
        text = (location.leading_comments or location.trailing_comments).strip()
        if text:
            found[tuple(location.path)] = " ".join(text.split())
    return found


def _message(
    message: descriptor_pb2.DescriptorProto,
    prefix: str,
    path: Path,
    texts: dict[Path, str],
    out: dict[str, str],
) -> None:
    name = f"{prefix}.{message.name}" if prefix else message.name
    _put(out, name, texts.get(path))
    for i, field in enumerate(message.field):
        _put(out, f"{name}.{field.name}", texts.get((*path, _MESSAGE_FIELDS, i)))
    for i, nested in enumerate(message.nested_type):
        _message(nested, name, (*path, _MESSAGE_NESTED, i), texts, out)
    for i, enum in enumerate(message.enum_type):
        _put(out, f"{name}.{enum.name}", texts.get((*path, _MESSAGE_ENUMS, i)))


def _put(out: dict[str, str], name: str, text: str | None) -> None:
    if text:
        out[name] = text


def comments_of(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Full protobuf name (of a message, field, enum, service or method) -> its comment."""
    texts = _by_path(file)
    if not texts:
        return {}
    out: dict[str, str] = {}
    package = file.package
    for i, message in enumerate(file.message_type):
        _message(message, package, (_FILE_MESSAGES, i), texts, out)
    for i, enum in enumerate(file.enum_type):
        name = f"{package}.{enum.name}" if package else enum.name
        _put(out, name, texts.get((_FILE_ENUMS, i)))
    for i, service in enumerate(file.service):
        name = f"{package}.{service.name}" if package else service.name
        _put(out, name, texts.get((_FILE_SERVICES, i)))
        for j, method in enumerate(service.method):
            _put(out, f"{name}.{method.name}", texts.get((_FILE_SERVICES, i, _SERVICE_METHODS, j)))
    return out
