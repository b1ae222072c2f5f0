"""The JSON mapping M3O's clients speak.

- field names are the ``.proto`` names as written (``api_key``, ``authToken``);
- 64-bit integers are JSON numbers (protobuf's canonical mapping makes them strings);
- fields holding their default value are omitted;
- input accepts the proto names and lowerCamelCase, ignores unknown fields (as M3O's
  gateway did), and rejects values of the wrong type with BadRequest;
- a string field marked ``[(m3o.rpc.json_text) = true]`` (``json_options.proto``) holds a
  JSON document: input may give the document itself (``{"template_data": {"code": "X"}}``)
  instead of its text, and it is taken as its compact JSON text.
"""

from __future__ import annotations

import base64
import functools
from typing import Any, TypeVar, cast

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from m3o.runtime.errors import BadRequest
from m3o.runtime.rpc.json_options_pb2 import json_text

__all__ = ["dict_to_message", "json_to_message", "message_to_dict", "message_to_json"]

M = TypeVar("M", bound=Message)

_WELL_KNOWN_PREFIX = "google.protobuf."


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _message_value(message: Message) -> Any:
    if message.DESCRIPTOR.full_name.startswith(_WELL_KNOWN_PREFIX):
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    return message_to_dict(message)


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_value(value)
    return _scalar(field, value)


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message as a JSON-ready dict in M3O's mapping."""
    if message.DESCRIPTOR.full_name.startswith(_WELL_KNOWN_PREFIX):
        result = json_format.MessageToDict(message, preserving_proto_field_name=True)
        return result if isinstance(result, dict) else {"value": result}
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(k): _value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_value(field, v) for v in value]
        else:
            out[field.name] = _value(field, value)
    return out


def message_to_json(message: Message) -> bytes:
    return orjson.dumps(message_to_dict(message))


def _is_json_text(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_STRING
        and field.has_options
        and bool(field.GetOptions().Extensions[json_text])
    )


@functools.lru_cache(maxsize=4096)
def _holds_json_text(descriptor: Descriptor) -> bool:
    """Whether a ``json_text`` field is reachable from messages of this type (computed once
    per type: requests of every other type are parsed without a second walk)."""
    seen: set[str] = set()
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            if _is_json_text(field):
                return True
            if field.message_type is not None:
                pending.append(field.message_type)
    return False


def _field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    found = descriptor.fields_by_name.get(key)
    if found is not None:
        return found
    return next((f for f in descriptor.fields if f.json_name == key), None)


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if _is_json_text(field):
        return value if value is None or isinstance(value, str) else orjson.dumps(value).decode()
    target = field.message_type
    if target is None or not _holds_json_text(target):
        return value
    if target.GetOptions().map_entry:
        entry = target.fields_by_name["value"]
        if isinstance(value, dict):
            return {key: _field_value(entry, item) for key, item in value.items()}
        return value
    if field.is_repeated and isinstance(value, list):
        return [_documents_as_text(item, target) for item in value]
    return _documents_as_text(value, target)


def _documents_as_text(data: Any, descriptor: Descriptor) -> Any:
    """``data`` with the JSON documents given for ``json_text`` fields as their text."""
    if not isinstance(data, dict) or not _holds_json_text(descriptor):
        return data  # nothing to do, or the wrong shape, which ParseDict names
    out = {}
    for key, value in data.items():
        field = _field(descriptor, key)
        out[key] = value if field is None else _field_value(field, value)
    return out


def dict_to_message(data: Any, message_type: type[M], error_id: str) -> M:
    """Build ``message_type`` from decoded JSON; a wrong shape is BadRequest(error_id)."""
    if not isinstance(data, dict):
        raise BadRequest(error_id, "Request body must be a JSON object")
    message = message_type()
    try:
        json_format.ParseDict(
            _documents_as_text(data, cast(Descriptor, message.DESCRIPTOR)),
            message,
            ignore_unknown_fields=True,
        )
    except json_format.ParseError as exc:
        raise BadRequest(error_id, f"Invalid request: {exc}") from None
    return message


def json_to_message(raw: bytes | str, message_type: type[M], error_id: str) -> M:
    """Parse a JSON body into ``message_type``; an empty body is the empty request."""
    if not raw or not raw.strip():
        return message_type()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(error_id, "Request body is not valid JSON") from None
    return dict_to_message(data, message_type, error_id)
