"""Reading ``SendRequest.template_data``: one JSON object, in the shapes callers send it.

- its JSON text (``{"code": "X"}``): what our clients send, and what a client of the
  reference sends over gRPC (its field is ``bytes`` holding that text; ``bytes`` and
  ``string`` are the same on the wire);
- the object itself in a JSON request: the JSON mapping hands it over as its text (the
  field is marked ``json_text``);
- base64 of its JSON text: the reference's shape in JSON (proto3's JSON mapping writes
  ``bytes`` as base64), in the standard or URL-safe alphabet, padding optional, as
  protobuf's own JSON parser reads ``bytes``.

The shapes cannot be confused: base64 of a JSON object starts with ``e`` (or ``C``, ``D``,
``I`` after leading white space), which no JSON text does, so text that parses as JSON is
JSON and anything else is read as base64.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from m3o.runtime.errors import BadRequest

__all__ = ["ERROR_ID", "MAX_TEMPLATE_DATA", "read_template_data"]

ERROR_ID = "emails.send.templatedata"
"""The reference's error id for template data it could not read."""
MAX_TEMPLATE_DATA = 64 * 1024
"""Bytes of template data (its JSON text) one email may carry."""
_MAX_RAW = (MAX_TEMPLATE_DATA + 2) // 3 * 4
"""The longest the field may be: the base64 of the largest JSON text."""
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_NEITHER = "Template data must be a JSON object, or its JSON text in base64: this is neither"


def read_template_data(raw: str) -> dict[str, Any]:
    """The JSON object ``raw`` holds; BadRequest(:data:`ERROR_ID`) naming what is wrong."""
    text = raw.strip()
    if not text:
        return {}
    if len(text) > _MAX_RAW:
        raise BadRequest(ERROR_ID, "Template data is too large")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        if text[0] in "{[":  # meant as JSON
            raise BadRequest(ERROR_ID, "Template data must be a JSON object") from None
        return _from_base64(text)
    if not isinstance(data, dict):
        raise BadRequest(ERROR_ID, "Template data must be a JSON object")
    if len(text.encode()) > MAX_TEMPLATE_DATA:
        raise BadRequest(ERROR_ID, "Template data is too large")
    return data


def _from_base64(text: str) -> dict[str, Any]:
    if not _BASE64.fullmatch(text):
        raise BadRequest(ERROR_ID, _NEITHER)
    standard = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error:
        raise BadRequest(ERROR_ID, _NEITHER) from None
    if len(decoded) > MAX_TEMPLATE_DATA:
        raise BadRequest(ERROR_ID, "Template data is too large")
    try:
        data = orjson.loads(decoded)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise BadRequest(ERROR_ID, "Template data in base64 must decode to a JSON object")
    return data
