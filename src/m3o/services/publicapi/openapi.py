"""An API's OpenAPI 3.1 document, generated from its descriptors when none is published.

One ``POST`` path per endpoint, relative to the ``/v1`` server, at the path the gateway
serves it (:mod:`m3o.services.publicapi.paths`). Request and response schemas follow the
JSON mapping of :mod:`m3o.runtime.jsonmap` (proto field names, 64-bit integers as JSON
integers, enums as string enums, maps as objects, repeated fields as arrays), messages as
``$ref`` components named by their full protobuf name. Streaming endpoints are marked
``x-stream`` (``server``, ``client`` or ``bidirectional``): /v1 serves them over a
websocket. Comments become descriptions when the descriptors carry source info.

A field whose comment starts with ``Required`` (``// Required. the city``) is listed in its
message's ``required``, and a required string or list must not be empty (``minLength`` /
``minItems`` 1): proto3 cannot tell an absent field from an empty one. Nothing is
``nullable``: the JSON mapping never writes ``null``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from m3o.services.publicapi.comments import comments_of
from m3o.services.publicapi.descriptors import Descriptors, Endpoint
from m3o.services.publicapi.paths import endpoint_path, main_service

__all__ = ["ERROR_SCHEMA", "generate_openapi"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer, with `code` equal to the HTTP status.",
    "properties": {
        "id": {"type": "string", "description": "Where it happened."},
        "code": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "status": {"type": "string", "description": "The HTTP status text."},
    },
    "required": ["id", "code", "detail", "status"],
}

_INT64 = {"type": "integer", "format": "int64"}
_UINT = {"type": "integer", "format": "int64", "minimum": 0}
_INT32 = {"type": "integer", "format": "int32"}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT,
    FieldDescriptor.TYPE_FIXED64: _UINT,
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT,
    FieldDescriptor.TYPE_FIXED32: _UINT,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

# Well-known types keep protobuf's canonical JSON.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object", "additionalProperties": True},
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

_ERROR = "Error"
_REQUIRED = re.compile(r"^Required\b")


def _is_required(comment: str | None) -> bool:
    return comment is not None and _REQUIRED.match(comment) is not None


def _non_empty(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string" and "contentEncoding" not in schema:
        return {**schema, "minLength": 1}
    if schema.get("type") == "array":
        return {**schema, "minItems": 1}
    return schema


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _described(schema: dict[str, Any], text: str | None) -> dict[str, Any]:
    return {**schema, "description": text} if text else schema


class _Schemas:
    """Component schemas of messages and enums, each written once."""

    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {_ERROR: ERROR_SCHEMA}

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.schemas:
            schema = {"type": "string", "enum": [value.name for value in enum.values]}
            self.schemas[enum.full_name] = _described(schema, self.comments.get(enum.full_name))
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
            return {"type": "object", "additionalProperties": value}
        if field.is_repeated:
            return {"type": "array", "items": self._single(field)}
        return self._single(field)

    def message(self, message: Descriptor) -> dict[str, Any]:
        name = message.full_name
        known = _WELL_KNOWN.get(name)
        if known is not None:
            return dict(known)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: a recursive message ends here
            properties: dict[str, Any] = {}
            required: list[str] = []
            for field in message.fields:
                text = self.comments.get(f"{name}.{field.name}")
                schema = _described(self.field(field), text)
                if _is_required(text):
                    required.append(field.name)
                    schema = _non_empty(schema)
                properties[field.name] = schema
            document: dict[str, Any] = {"type": "object", "properties": properties}
            if required:
                document["required"] = required
            self.schemas[name] = _described(document, self.comments.get(name))
        return _ref(name)


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _stream_kind(endpoint: Endpoint) -> str:
    if endpoint.client_streaming and endpoint.server_streaming:
        return "bidirectional"
    return "client" if endpoint.client_streaming else "server"


def _operation(endpoint: Endpoint, schemas: _Schemas, descriptors: Descriptors) -> dict[str, Any]:
    request = descriptors.pool.FindMessageTypeByName(endpoint.request_type)
    response = descriptors.pool.FindMessageTypeByName(endpoint.response_type)
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.method,
        "tags": [endpoint.service.rsplit(".", 1)[-1]],
        "requestBody": {"required": True, "content": _json_body(schemas.message(request))},
        "responses": {
            "200": {"description": "The answer.", "content": _json_body(schemas.message(response))},
            "default": {"description": "An error.", "content": _json_body(_ref(_ERROR))},
        },
    }
    text = schemas.comments.get(f"{endpoint.service}.{endpoint.method}")
    if text:
        operation["description"] = text
    if endpoint.streaming:
        operation["x-stream"] = _stream_kind(endpoint)
    return operation


def generate_openapi(
    *, name: str, display_name: str, description: str, descriptors: Descriptors
) -> str:
    """The OpenAPI document of API ``name``, as JSON text."""
    comments: dict[str, str] = {}
    for file in descriptors.files.file:
        comments.update(comments_of(file))
    schemas = _Schemas(comments)
    main = main_service(name, descriptors.endpoints)
    paths = {
        endpoint_path(name, endpoint, main): {"post": _operation(endpoint, schemas, descriptors)}
        for endpoint in descriptors.endpoints
    }
    info: dict[str, Any] = {"title": display_name or name, "version": "1.0.0"}
    if description:
        info["description"] = description
    document = {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": "/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Your API key."}
            },
        },
    }
    return orjson.dumps(document).decode()
