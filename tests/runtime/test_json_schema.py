"""JSON schemas of protobuf messages, shared by the platform and published API documents."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, text_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from m3o.runtime.rpc.json_schema import (
    ERROR_REF,
    ERROR_SCHEMA,
    WELL_KNOWN,
    SchemaBuilder,
    is_required,
    schema_ref,
)

SHAPES = """
name: "lab/shapes.proto"
package: "lab"
syntax: "proto3"
dependency: "google/protobuf/duration.proto"
message_type {
  name: "Shape"
  field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "tags" number: 2 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "kind" number: 3 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".lab.Kind" }
  field { name: "parent" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".lab.Shape" }
  field { name: "sizes" number: 5 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".lab.Shape.SizesEntry" }
  field { name: "data" number: 6 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "ttl" number: 7 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Duration" }
  field { name: "count" number: 8 label: LABEL_OPTIONAL type: TYPE_UINT32 }
  nested_type {
    name: "SizesEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT64 }
    options { map_entry: true }
  }
}
enum_type {
  name: "Kind"
  value { name: "KIND_UNKNOWN" number: 0 }
  value { name: "KIND_ROUND" number: 1 }
}
"""

COMMENTS = {
    "lab.Shape": "Shape is a thing with a form.",
    "lab.Shape.name": "Required. name of the shape",
    "lab.Shape.tags": "Required. tags, at least one",
    "lab.Shape.kind": "kind of shape",
    "lab.Shape.data": "Required. raw bytes",
    "lab.Shape.count": "Required. how many",
    "lab.Shape.ttl": "",
    "lab.Kind": "Kind of a shape.",
}


@pytest.fixture(scope="module")
def shape() -> Descriptor:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(duration_pb2.DESCRIPTOR.serialized_pb)
    proto = text_format.Parse(SHAPES, descriptor_pb2.FileDescriptorProto())
    pool.Add(proto)
    return pool.FindMessageTypeByName("lab.Shape")


def _comment(descriptor: Descriptor | EnumDescriptor | FieldDescriptor) -> str | None:
    return COMMENTS.get(descriptor.full_name)


def test_a_message_becomes_components_following_the_json_mapping(shape: Descriptor) -> None:
    builder = SchemaBuilder(_comment)
    assert builder.message(shape) == {"$ref": "#/components/schemas/lab.Shape"}
    assert list(builder.schemas) == [ERROR_REF, "lab.Shape", "lab.Kind"]
    assert builder.schemas[ERROR_REF] == ERROR_SCHEMA
    assert builder.schemas["lab.Kind"] == {
        "type": "string",
        "enum": ["KIND_UNKNOWN", "KIND_ROUND"],
        "description": "Kind of a shape.",
    }
    assert builder.schemas["lab.Shape"] == {
        "type": "object",
        "description": "Shape is a thing with a form.",
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "description": "Required. name of the shape",
            },
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Required. tags, at least one",
            },
            "kind": {"$ref": "#/components/schemas/lab.Kind", "description": "kind of shape"},
            "parent": {"$ref": "#/components/schemas/lab.Shape"},
            "sizes": {
                "type": "object",
                "additionalProperties": {"type": "integer", "format": "int64"},
            },
            "data": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "Required. raw bytes",
            },
            "ttl": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
            "count": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "Required. how many",
            },
        },
        "required": ["name", "tags", "data", "count"],
    }


def test_without_comments_nothing_is_required_or_described(shape: Descriptor) -> None:
    builder = SchemaBuilder(lambda descriptor: None)
    builder.message(shape)
    schema: dict[str, Any] = builder.schemas["lab.Shape"]
    assert "required" not in schema
    assert "description" not in schema
    assert schema["properties"]["name"] == {"type": "string"}
    assert builder.schemas["lab.Kind"] == {"type": "string", "enum": ["KIND_UNKNOWN", "KIND_ROUND"]}


def test_well_known_types_are_inline_and_can_be_replaced(shape: Descriptor) -> None:
    duration = shape.fields_by_name["ttl"].message_type
    assert duration is not None
    assert SchemaBuilder(_comment).message(duration) == WELL_KNOWN["google.protobuf.Duration"]
    looser = {**WELL_KNOWN, "google.protobuf.Duration": {"type": "string"}}
    builder = SchemaBuilder(_comment, well_known=looser)
    assert builder.message(duration) == {"type": "string"}
    assert list(builder.schemas) == [ERROR_REF]


@pytest.mark.parametrize(
    ("comment", "required"),
    [
        ("Required. the city", True),
        ("Required", True),
        ("Required: the city", True),
        ("Requiredness of the city", False),
        ("the city. Required", False),
        ("required. the city", False),
        ("", False),
        (None, False),
    ],
)
def test_a_comment_starting_with_required_marks_a_field_required(
    comment: str | None, required: bool
) -> None:
    assert is_required(comment) is required


def test_schema_ref_points_at_a_component() -> None:
    assert schema_ref("lab.Shape") == {"$ref": "#/components/schemas/lab.Shape"}
