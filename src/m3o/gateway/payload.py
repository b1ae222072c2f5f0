"""The request message of an HTTP call: JSON body and query string, merged.

- the body must be a JSON object (an empty body is the empty request), at most the
  configured size;
- query keys with dots become nested objects (``a.b=1`` -> ``{"a": {"b": "1"}}``), a key
  given twice becomes a list, a single value for a repeated field becomes a list of one,
  and ``true`` / ``false`` fill booleans;
- the body's fields win over the query's (objects present in both are merged).

Values from the query are strings; the protobuf JSON parser accepts strings for numbers
and booleans, so ``?limit=10`` fills an ``int32``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.requests import ClientDisconnect, Request

from m3o.runtime.errors import BadRequest

__all__ = ["TOO_LARGE", "merge", "query_to_dict", "read_body", "request_data"]

TOO_LARGE = "Request body too large"


async def read_body(request: Request, limit: int, error_id: str) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(error_id, TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(error_id, TOO_LARGE)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(error_id, "Client disconnected") from None
    return b"".join(chunks)


def _set_path(target: dict[str, Any], key: str, value: str, error_id: str) -> None:
    *parents, leaf = key.split(".")
    node = target
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BadRequest(error_id, f"Query parameter {key} conflicts with {part}")
        node = child
    existing = node.get(leaf)
    if existing is None:
        node[leaf] = value
    elif isinstance(existing, list):
        existing.append(value)
    elif isinstance(existing, str):
        node[leaf] = [existing, value]
    else:
        raise BadRequest(error_id, f"Query parameter {key} conflicts with {key}.*")


def query_to_dict(items: Iterable[tuple[str, str]], error_id: str) -> dict[str, Any]:
    """Query pairs as a JSON object: dotted keys nest, repeated keys make lists."""
    out: dict[str, Any] = {}
    for key, value in items:
        if key:
            _set_path(out, key, value, error_id)
    return out


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    found = descriptor.fields_by_name.get(name)
    return found if found is not None else descriptor.fields_by_camelcase_name.get(name)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _fit_scalar(field: FieldDescriptor, value: Any) -> Any:
    # The JSON parser takes numbers and enum names as strings, but only real booleans.
    if field.type == FieldDescriptor.TYPE_BOOL and isinstance(value, str):
        return _BOOLS.get(value.lower(), value)
    return value


def fit_to_message(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """Shape query values for a message, at any depth: a single value of a repeated field
    becomes a list of one, ``true`` / ``false`` become booleans."""
    for name, value in data.items():
        field = _field(descriptor, name)
        if field is None or _is_map(field):
            continue
        if field.is_repeated:
            values = value if isinstance(value, list) else [value]
            data[name] = [_fit_scalar(field, v) for v in values]
        elif field.message_type is not None and isinstance(value, dict):
            fit_to_message(value, field.message_type)
        else:
            data[name] = _fit_scalar(field, value)
    return data


def merge(base: dict[str, Any], winner: dict[str, Any]) -> dict[str, Any]:
    """``base`` overlaid with ``winner``; objects in both are merged, ``winner`` wins."""
    out = dict(base)
    for key, value in winner.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            out[key] = merge(current, value)
        else:
            out[key] = value
    return out


def request_data(
    body: bytes, query: list[tuple[str, str]], message_type: type[Message], error_id: str
) -> dict[str, Any]:
    """The request as a JSON object: the body (an object or empty) over the query."""
    data: dict[str, Any] = {}
    if body.strip():
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest(error_id, "Request body is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise BadRequest(error_id, "Request body must be a JSON object")
        data = decoded
    if not query:
        return data
    descriptor = cast(Descriptor, message_type.DESCRIPTOR)
    return merge(fit_to_message(query_to_dict(query, error_id), descriptor), data)
