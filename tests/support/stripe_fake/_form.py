"""Stripe's form encoding, read back into nested dictionaries and lists.

Stripe's API takes ``application/x-www-form-urlencoded`` bodies (and query strings) whose
keys spell out nesting: ``metadata[order]=7``, ``line_items[0][price_data][currency]=usd``,
``expand[]=customer``. :func:`decode_form` turns the pairs into the structure they stand
for. Every leaf stays a string, as on the wire; the endpoints parse integers and booleans
themselves. A mapping whose keys are all indices (``0``, ``1``, ...) becomes a list in
index order, except under ``metadata``, whose keys are the caller's own.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FormError", "decode_form"]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A key that is not ``name`` followed by ``[part]`` groups, or that contradicts another."""


def decode_form(encoded: str) -> dict[str, Any]:
    """The nested parameters ``encoded`` (a body or a query string) stands for."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True, strict_parsing=False):
        match = _KEY.match(key)
        if match is None:
            raise FormError(f"Invalid parameter name: {key}")
        path = [match.group(1), *_PART.findall(match.group(2))]
        _put(root, path, value, key)
    return _lists(root, inside_metadata=False)


def _put(node: dict[str, Any], path: list[str], value: str, key: str) -> None:
    for depth, part in enumerate(path[:-1]):
        # ``expand[]=a&expand[]=b``: an empty part appends, numbered after what is there.
        name = str(len(node)) if part == "" and depth > 0 else part
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise FormError(f"Invalid parameter name: {key}")
        node = child
    last = path[-1]
    if last == "" and len(path) > 1:
        last = str(len(node))
    if isinstance(node.get(last), dict):
        raise FormError(f"Invalid parameter name: {key}")
    node[last] = value


def _lists(node: dict[str, Any], *, inside_metadata: bool) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for name, value in node.items():
        decoded[name] = _decode(value, metadata=inside_metadata or name == "metadata")
    return decoded


def _decode(value: Any, *, metadata: bool) -> Any:
    if not isinstance(value, dict):
        return value
    children = _lists(value, inside_metadata=metadata)
    if not metadata and children and all(name.isdigit() for name in children):
        return [children[name] for name in sorted(children, key=int)]
    return children
