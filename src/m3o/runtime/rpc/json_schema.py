"""JSON schemas of protobuf messages, as OpenAPI 3.1 components.

Shared by the platform API's ``/openapi.json`` and each published API's generated document.
Schemas follow the JSON mapping of :mod:`m3o.runtime.rpc.jsonmap`: proto field names, 64-bit
integers as JSON integers, enums as string enums, maps as objects, repeated fields as
arrays, well-known types as protobuf's canonical JSON, and messages and enums as ``$ref``
components named by their full protobuf name. Nothing is ``nullable``: the JSON mapping
never writes ``null``.

A field whose comment starts with ``Required`` (``// Required. email of the customer``) is
listed in its message's ``required``, and a required string or list must not be empty
(``minLength`` / ``minItems`` 1), as proto3 cannot tell an absent field from an empty one.
Where comments come from is the caller's: a ``comment(descriptor)`` callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

__all__ = [
    "ERROR_REF",
    "ERROR_SCHEMA",
    "WELL_KNOWN",
    "Comment",
    "SchemaBuilder",
    "is_required",
    "schema_ref",
]

ERROR_REF = "Error"
"""The component name of :data:`ERROR_SCHEMA`."""

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
"""Every error answer: ``{"id", "code", "detail", "status"}``."""

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

WELL_KNOWN: Mapping[str, dict[str, Any]] = {
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
"""Inline schemas of the well-known types, by full name (they keep protobuf's canonical
JSON: :mod:`m3o.runtime.rpc.jsonmap` hands them to ``json_format``)."""

Comment = Callable[[Descriptor | EnumDescriptor | FieldDescriptor], str | None]
"""The comment of a message, enum or field (``None`` or ``""`` when it has none)."""

_REQUIRED = re.compile(r"^Required\b")


def is_required(comment: str | None) -> bool:
    """Whether a field's comment marks it required (it starts with ``Required``)."""
    return comment is not None and _REQUIRED.match(comment) is not None


def schema_ref(name: str) -> dict[str, Any]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _non_empty(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string" and "contentEncoding" not in schema:
        return {**schema, "minLength": 1}
    if schema.get("type") == "array":
        return {**schema, "minItems": 1}
    return schema


def _described(schema: dict[str, Any], text: str | None) -> dict[str, Any]:
    return {**schema, "description": text} if text else schema


class SchemaBuilder:
    """Collects the component schemas of messages and enums, each written once.

    ``schemas`` starts with :data:`ERROR_SCHEMA` at :data:`ERROR_REF` and grows in the
    order messages and enums are first met. ``well_known`` are the inline schemas of
    well-known types (by full name).
    """

    def __init__(
        self, comment: Comment, *, well_known: Mapping[str, dict[str, Any]] = WELL_KNOWN
    ) -> None:
        self._comment = comment
        self._well_known = well_known
        self.schemas: dict[str, Any] = {ERROR_REF: ERROR_SCHEMA}

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        """A reference to ``enum``'s component: a string enum of its value names."""
        if enum.full_name not in self.schemas:
            schema = {"type": "string", "enum": [value.name for value in enum.values]}
            self.schemas[enum.full_name] = _described(schema, self._comment(enum))
        return schema_ref(enum.full_name)

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            return self.enum(field.enum_type)
        if field.message_type is not None:
            return self.message(field.message_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of ``field``'s value (without its description)."""
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = self._single(entry.fields_by_name["value"])
            return {"type": "object", "additionalProperties": value}
        if field.is_repeated:
            return {"type": "array", "items": self._single(field)}
        return self._single(field)

    def message(self, message: Descriptor) -> dict[str, Any]:
        """A reference to ``message``'s component, or a well-known type's inline schema."""
        name = message.full_name
        known = self._well_known.get(name)
        if known is not None:
            return dict(known)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: a recursive message ends here
            properties: dict[str, Any] = {}
            required: list[str] = []
            for field in message.fields:
                text = self._comment(field)
                schema = _described(self.field(field), text)
                if is_required(text):
                    required.append(field.name)
                    schema = _non_empty(schema)
                properties[field.name] = schema
            document: dict[str, Any] = {"type": "object", "properties": properties}
            if required:
                document["required"] = required
            self.schemas[name] = _described(document, self._comment(message))
        return schema_ref(name)
