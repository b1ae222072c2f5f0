"""Comments of an uploaded ``.proto`` file, from its descriptor's ``source_code_info``.

``protoc --include_source_info`` keeps them; reflection and ``DESCRIPTOR`` of generated
modules do not, so an API without them simply gets a document without descriptions. A
location's leading comment counts, else its trailing one, on one line.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from m3o.runtime.rpc.proto_comments import Location, comments_by_name

__all__ = ["comments_of"]


def _one_line(location: Location) -> str:
    return " ".join((location.leading_comments or location.trailing_comments).split())


def comments_of(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Full protobuf name (of a message, field, enum, service or method) -> its comment."""
    return comments_by_name(file, _one_line)
