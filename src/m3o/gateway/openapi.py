"""The platform API's OpenAPI 3.1 document, generated from the protobuf descriptors.

One ``POST`` path per unary method, at the URL the router serves it
(``/<service>/<Method>``, or ``/<service>/<Handler>/<Method>`` for a service's other
handlers). Schemas follow the JSON mapping of :mod:`m3o.runtime.rpc.jsonmap`: proto field names,
64-bit integers as JSON integers, enums as string enums, maps as objects, repeated fields as
arrays, messages as ``$ref`` components named by their full protobuf name. Proto comments
become descriptions: ``m3o gen`` writes them beside each generated module
(``<stem>_pb2_comments.py``, :func:`~m3o.runtime.rpc.proto_comments.generated_comments`).

A field whose comment starts with ``Required`` (``// Required. email of the customer``) is
one the handler refuses a request without: it is listed in its message's ``required``, and
a required string or list must not be empty (``minLength`` / ``minItems`` 1), as proto3
cannot tell an absent field from an empty one. Nothing is ``nullable``: the JSON mapping
never writes ``null`` and answers omit fields holding their default value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from m3o.gateway.routing import Endpoint
from m3o.runtime.rpc.json_schema import (
    ERROR_REF,
    ERROR_SCHEMA,
    SchemaBuilder,
    is_required,
    schema_ref,
)
from m3o.runtime.rpc.proto_comments import generated_comments

__all__ = ["ERROR_SCHEMA", "is_required", "openapi_document"]


def _descriptor(message_type: type[Message]) -> Descriptor:
    return cast(Descriptor, message_type.DESCRIPTOR)


class _Comments:
    """The comments ``m3o gen`` wrote for the ``.proto`` files, looked up once per file."""

    def __init__(self) -> None:
        self._by_file: dict[str, Mapping[str, str]] = {}

    def of_file(self, descriptor: Descriptor | EnumDescriptor) -> Mapping[str, str]:
        """The comments of the file defining ``descriptor``."""
        file_name = descriptor.file.name
        found = self._by_file.get(file_name)
        if found is None:
            found = self._by_file[file_name] = generated_comments(file_name)
        return found

    def __call__(self, descriptor: Descriptor | EnumDescriptor | FieldDescriptor) -> str | None:
        """The comment of a message, an enum or a field (read from its message's file)."""
        if isinstance(descriptor, FieldDescriptor):
            owner = descriptor.containing_type
            return None if owner is None else self.of_file(owner).get(descriptor.full_name)
        return self.of_file(descriptor).get(descriptor.full_name)


def _summary(text: str) -> str:
    """The first sentence of a comment."""
    first = text.split("\n\n", 1)[0]
    sentence, dot, rest = first.partition(". ")
    return sentence + "." if dot and rest else first


def _operation(builder: SchemaBuilder, comments: _Comments, endpoint: Endpoint) -> dict[str, Any]:
    method = endpoint.method
    text = comments.of_file(_descriptor(method.request_type)).get(
        f"{endpoint.spec.full_name}.{method.name}", f"{endpoint.spec.handler}.{method.name}"
    )
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.spec.service}.{endpoint.spec.handler}.{method.name}",
        "tags": [endpoint.spec.service],
        "summary": _summary(text),
        "description": text,
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": builder.message(_descriptor(method.request_type))}
            },
        },
        "responses": {
            "200": {
                "description": "Success",
                "content": {
                    "application/json": {
                        "schema": builder.message(_descriptor(method.response_type))
                    }
                },
            },
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": schema_ref(ERROR_REF)}},
            },
        },
    }
    return operation


def openapi_document(
    endpoints: Iterable[Endpoint], *, title: str = "M3O platform API", version: str = "1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints (streaming ones are left out)."""
    comments = _Comments()
    builder = SchemaBuilder(comments)
    unary = [e for e in endpoints if not e.streaming]
    paths: dict[str, Any] = {}
    for endpoint in sorted(unary, key=lambda e: e.label):
        paths[endpoint.label] = {"post": _operation(builder, comments, endpoint)}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}, {}],
    }
