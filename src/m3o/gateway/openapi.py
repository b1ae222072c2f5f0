"""The platform API's OpenAPI 3.1 document, generated from the protobuf descriptors.

One ``POST`` path per unary method, at the URL the router serves it
(``/<service>/<Method>``, or ``/<service>/<Handler>/<Method>`` for a service's other
handlers). Schemas follow the JSON mapping of :mod:`m3o.runtime.jsonmap`: proto field names,
64-bit integers as JSON integers, enums as string enums, maps as objects, repeated fields as
arrays, messages as ``$ref`` components named by their full protobuf name. Proto comments
become descriptions when the ``.proto`` file ships beside its generated module.

A field whose comment starts with ``Required`` (``// Required. email of the customer``) is
one the handler refuses a request without: it is listed in its message's ``required``, and
a required string or list must not be empty (``minLength`` / ``minItems`` 1), as proto3
cannot tell an absent field from an empty one. Nothing is ``nullable``: the JSON mapping
never writes ``null`` and answers omit fields holding their default value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from m3o.gateway.proto_comments import comments_beside
from m3o.gateway.routing import Endpoint

__all__ = ["ERROR_SCHEMA", "is_required", "openapi_document"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer, with `code` equal to the HTTP status.",
    "properties": {
        "id": {"type": "string", "description": "Where it happened: `<service>.<method>`."},
        "code": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "status": {"type": "string", "description": "The HTTP status text."},
    },
    "required": ["id", "code", "detail", "status"],
}

_ERROR_REF = "Error"

_INT64 = {"type": "integer", "format": "int64"}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED64: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

# Well-known types keep protobuf's canonical JSON (jsonmap hands them to json_format).
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int64Value": {"type": ["string", "integer"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "integer"], "format": "int64"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "contentEncoding": "base64"},
}


_REQUIRED = re.compile(r"^Required\b")


def is_required(comment: str | None) -> bool:
    """Whether a field's comment marks it required (it starts with ``Required``)."""
    return comment is not None and _REQUIRED.match(comment) is not None


def _non_empty(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string" and "contentEncoding" not in schema:
        return {**schema, "minLength": 1}
    if schema.get("type") == "array":
        return {**schema, "minItems": 1}
    return schema


def _descriptor(message_type: type[Message]) -> Descriptor:
    return cast(Descriptor, message_type.DESCRIPTOR)


def _ref(full_name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{full_name}"}


class _SchemaBuilder:
    """Collects component schemas for messages and enums, each written once."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {_ERROR_REF: ERROR_SCHEMA}
        self._comments: dict[str, dict[str, str]] = {}

    def comments(self, descriptor: Descriptor | EnumDescriptor) -> dict[str, str]:
        """The comments of the file defining ``descriptor`` (read once per file)."""
        file_name = descriptor.file.name
        found = self._comments.get(file_name)
        if found is None:
            first = next(iter(descriptor.file.message_types_by_name.values()), None)
            found = comments_beside(message_factory.GetMessageClass(first)) if first else {}
            self._comments[file_name] = found
        return found

    def _described(
        self, schema: dict[str, Any], descriptor: Descriptor | EnumDescriptor, name: str
    ) -> dict[str, Any]:
        text = self.comments(descriptor).get(name)
        return {**schema, "description": text} if text else schema

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.schemas:
            schema = {"type": "string", "enum": [v.name for v in enum.values]}
            self.schemas[enum.full_name] = self._described(schema, enum, enum.full_name)
        return _ref(enum.full_name)

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            return self.enum(field.enum_type)
        if field.message_type is not None:
            return self.message(field.message_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = self._single(entry.fields_by_name["value"])
            schema: dict[str, Any] = {"type": "object", "additionalProperties": value}
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single(field)}
        else:
            schema = self._single(field)
        return schema

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        name = descriptor.full_name
        known = _WELL_KNOWN.get(name)
        if known is not None:
            return dict(known)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive messages end here
            comments = self.comments(descriptor)
            properties: dict[str, Any] = {}
            required: list[str] = []
            for field in descriptor.fields:
                schema = self._described(self.field(field), descriptor, f"{name}.{field.name}")
                if is_required(comments.get(f"{name}.{field.name}")):
                    required.append(field.name)
                    schema = _non_empty(schema)
                properties[field.name] = schema
            message: dict[str, Any] = {"type": "object", "properties": properties}
            if required:
                message["required"] = required
            self.schemas[name] = self._described(message, descriptor, name)
        return _ref(name)


def _summary(text: str) -> str:
    """The first sentence of a comment."""
    first = text.split("\n\n", 1)[0]
    sentence, dot, rest = first.partition(". ")
    return sentence + "." if dot and rest else first


def _operation(builder: _SchemaBuilder, endpoint: Endpoint) -> dict[str, Any]:
    method = endpoint.method
    text = builder.comments(_descriptor(method.request_type)).get(
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
                "content": {"application/json": {"schema": _ref(_ERROR_REF)}},
            },
        },
    }
    return operation


def openapi_document(
    endpoints: Iterable[Endpoint], *, title: str = "M3O platform API", version: str = "1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints (streaming ones are left out)."""
    builder = _SchemaBuilder()
    unary = [e for e in endpoints if not e.streaming]
    paths: dict[str, Any] = {}
    for endpoint in sorted(unary, key=lambda e: e.label):
        paths[endpoint.label] = {"post": _operation(builder, endpoint)}
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
