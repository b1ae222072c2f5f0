"""The request message of an HTTP call: JSON body and query string, merged.

- the body must be a JSON object (an empty body is the empty request), at most the
  configured size (larger is 413, :class:`PayloadTooLarge`), sent as
  ``Content-Type: application/json`` (or ``application/*+json``, charset UTF-8 when one
  is named); any other type, or none, with a body is 415;
- JSON is nested at most :data:`MAX_DEPTH` levels (the top-level object is level 1) and
  no string, key or value, contains NUL; both are checked on the text, without recursion
  and without a Python loop over it, before the request goes anywhere (so before
  authentication too). The same
  holds for the query string (a dotted key's parts are its levels) and websocket frames;
- query keys with dots become nested objects (``a.b=1`` -> ``{"a": {"b": "1"}}``), a key
  given twice becomes a list, a single value for a repeated field becomes a list of one,
  and ``true`` / ``false`` fill booleans;
- the body's fields win over the query's (objects present in both are merged).

Values from the query are strings; the protobuf JSON parser accepts strings for numbers
and booleans, so ``?limit=10`` fills an ``int32``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar, cast

import grpc
import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.requests import ClientDisconnect, Request

from m3o.runtime.errors import BadRequest, M3OError

__all__ = [
    "HAS_NUL",
    "MAX_DEPTH",
    "NOT_JSON",
    "NOT_OBJECT",
    "TOO_DEEP",
    "TOO_LARGE",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "check_content_type",
    "check_query",
    "is_json_media_type",
    "merge",
    "parse_object",
    "query_to_dict",
    "read_body",
    "request_data",
]

TOO_LARGE = "Request body too large"
NOT_JSON = "Request body is not valid JSON"
NOT_OBJECT = "Request body must be a JSON object"
MAX_DEPTH = 64
"""Deepest nesting accepted in a request (objects and arrays; the top-level object is 1).
No M3O message comes near it; protobuf's own parsers stop at 100 and orjson's encoder at
255, and Python code that walks the request recursively would fail long before 1,000."""
TOO_DEEP = f"Request is nested too deeply (at most {MAX_DEPTH} levels)"
HAS_NUL = "Request must not contain NUL characters"
NOT_JSON_TYPE = "Content-Type must be application/json"

_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


class UnsupportedMediaType(M3OError):
    """415: a request body in a format other than JSON. Raised at the HTTP edge only."""

    code: ClassVar[int] = 415
    status: ClassVar[str] = "Unsupported Media Type"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INVALID_ARGUMENT


class PayloadTooLarge(M3OError):
    """413: a request body over the front's limit. Raised at the HTTP edge only."""

    code: ClassVar[int] = 413
    status: ClassVar[str] = "Request Entity Too Large"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INVALID_ARGUMENT


_PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8"})


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/<x>+json``, with no charset or UTF-8."""
    if content_type in _PLAIN_JSON:  # nearly every call's: no need to take it apart
        return True
    if not content_type:
        return False
    media, *params = (part.strip() for part in content_type.split(";"))
    media = media.lower()
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def check_content_type(content_type: str | None, body: bytes, error_id: str) -> None:
    """A body (anything but whitespace) must be declared JSON; an empty one needs nothing."""
    if body.strip() and not is_json_media_type(content_type):
        raise UnsupportedMediaType(error_id, NOT_JSON_TYPE)


def _too_deep(raw: bytes) -> bool:
    """Whether JSON text nests objects and arrays beyond :data:`MAX_DEPTH`.

    Without parsing and without a Python loop over the text: strings are cut out, the
    brackets left are made one kind, and each round of removing ``[]`` pairs removes the
    innermost level of a well-formed document, so what survives :data:`MAX_DEPTH` rounds
    is deeper than that. (For malformed text it is an estimate; that only picks which 400
    it gets.)
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    brackets = _STRINGS.sub(b"", raw).translate(_ONE_KIND, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return b"[]" in brackets or brackets.count(b"[") > MAX_DEPTH


def parse_object(raw: bytes | str, error_id: str, what: str = "Request body") -> dict[str, Any]:
    """``raw`` as a JSON object (empty or blank: ``{}``), bounded in depth, without NUL.

    Both checks read the text before it is parsed, at C speed: a 1 MiB body of small
    arrays costs milliseconds, not a walk over every value. In JSON text a NUL can only
    be the escape ``\\u0000`` (an odd run of backslashes before ``u0000``).
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if not data.strip():
        return {}
    if _too_deep(data):
        raise BadRequest(error_id, TOO_DEEP)
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadRequest(error_id, f"{what} is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise BadRequest(error_id, f"{what} must be a JSON object")
    if b"u0000" in data and _NUL_ESCAPE.search(data):
        raise BadRequest(error_id, HAS_NUL)
    return decoded


def check_query(items: Iterable[tuple[str, str]], error_id: str) -> None:
    """Query keys and values: no NUL, dotted keys at most :data:`MAX_DEPTH` levels."""
    for key, value in items:
        if "\x00" in key or "\x00" in value:
            raise BadRequest(error_id, HAS_NUL)
        if key.count(".") >= MAX_DEPTH:
            raise BadRequest(error_id, TOO_DEEP)


async def read_body(request: Request, limit: int, error_id: str) -> bytes:
    """The whole body; :class:`PayloadTooLarge` for more than ``limit`` bytes, before
    reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(error_id, TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(error_id, TOO_LARGE)
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
    data = parse_object(body, error_id)
    if not query:
        return data
    check_query(query, error_id)
    descriptor = cast(Descriptor, message_type.DESCRIPTOR)
    return merge(fit_to_message(query_to_dict(query, error_id), descriptor), data)
