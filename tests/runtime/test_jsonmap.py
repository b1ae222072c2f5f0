"""The JSON mapping reads a JSON document given for a ``json_text`` string field as that
document's text, wherever the field is, and nothing else changes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from m3o.runtime.errors import BadRequest
from m3o.runtime.rpc import json_options_pb2
from m3o.runtime.rpc.jsonmap import dict_to_message


def _doc_class() -> type[Message]:
    """``lab.Doc {string doc [json_text]; string name; Doc child; repeated Doc children;
    map<string, Doc> named}``."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="lab/doc.proto",
        package="lab",
        syntax="proto3",
        dependency=["m3o/runtime/rpc/json_options.proto"],
    )
    doc = file.message_type.add(name="Doc")
    entry = doc.nested_type.add(name="NamedEntry")
    entry.options.map_entry = True
    one, many, text, message = f.LABEL_OPTIONAL, f.LABEL_REPEATED, f.TYPE_STRING, f.TYPE_MESSAGE
    entry.field.add(name="key", number=1, type=text, label=one)
    entry.field.add(name="value", number=2, type=message, label=one, type_name=".lab.Doc")
    for name, number, kind, label, type_name in [
        ("doc_text", 1, text, one, ""),
        ("name", 2, text, one, ""),
        ("child", 3, message, one, ".lab.Doc"),
        ("children", 4, message, many, ".lab.Doc"),
        ("named", 5, message, many, ".lab.Doc.NamedEntry"),
    ]:
        added = doc.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            added.type_name = type_name
    marked = doc.field[0]
    marked.json_name = "docText"
    marked.options.Extensions[json_options_pb2.json_text] = True
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(json_options_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(file.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lab.Doc"))


DOC = _doc_class()


@pytest.mark.parametrize(
    "value",
    [{"a": [1, {"b": None}]}, [1, "two"], 42, 1.5, True, "already text"],
    ids=["object", "array", "integer", "float", "boolean", "string"],
)
@pytest.mark.parametrize("key", ["doc_text", "docText"])
def test_a_json_document_is_taken_as_its_text(value: Any, key: str) -> None:
    message: Any = dict_to_message({key: value}, DOC, "lab.doc")

    expected = value if isinstance(value, str) else orjson.dumps(value).decode()
    assert message.doc_text == expected


def test_documents_deep_in_the_message_are_taken_as_text_too() -> None:
    message: Any = dict_to_message(
        {
            "child": {"doc_text": {"x": 1}, "child": {"docText": [2]}},
            "children": [{"doc_text": {"y": 2}}, {"name": "plain"}],
            "named": {"k": {"doc_text": {"z": 3}}},
        },
        DOC,
        "lab.doc",
    )

    assert message.child.doc_text == '{"x":1}'
    assert message.child.child.doc_text == "[2]"
    assert [c.doc_text for c in message.children] == ['{"y":2}', ""]
    assert message.named["k"].doc_text == '{"z":3}'


def test_null_is_the_default_and_unknown_keys_are_ignored() -> None:
    message: Any = dict_to_message({"doc_text": None, "other": {"a": 1}}, DOC, "lab.doc")

    assert message.doc_text == ""


@pytest.mark.parametrize(
    "data",
    [{"name": {"a": 1}}, {"child": {"name": [1]}}, {"children": {"doc_text": {}}}],
    ids=["plain-field", "nested-plain-field", "message-list-not-a-list"],
)
def test_other_fields_still_refuse_values_of_the_wrong_type(data: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as raised:
        dict_to_message(data, DOC, "lab.doc")

    assert raised.value.id == "lab.doc"
    assert raised.value.detail.startswith("Invalid request: ")
