"""The reference's own config keys, read into ours.

A document written for the reference (``api/config.json`` and every ``config.Get`` of its
code) loads here unchanged: :func:`from_reference` moves each reference key that has a
meaning here onto our key and drops the rest, naming them, so the caller can warn once.

- ``v1.redis``, ``usage.redis``, ``balance.redis`` (``address``, ``user``, ``password``): the
  reference gave three services a Redis each; here every process shares the one in
  ``redis``. Each value fills ``redis.address`` / ``redis.username`` / ``redis.password``
  when the document leaves that key empty (in this order: v1, usage, balance); a value
  that differs from what is already there is ignored. An address taken from these blocks
  turns ``redis.secure`` on unless the document sets it: the reference's clients for them
  always spoke TLS.
- ``signup.sendgrid.template_id`` / ``recovery_template_id`` / ``welcome_template_id``: the
  SendGrid dynamic templates of the verification, recovery and welcome emails
  (``emails.sendgrid.templates``); ``invite_template_id`` is ignored (no invitations here).
- ``signup.oauth.google.client_id`` / ``client_secret``: ``oauth.google``'s, when empty
  there; ``signup.oauth.client_id`` / ``client_secret`` name no provider and are ignored
  (the reference's signup never read ``signup.oauth``; its oauth service reads ``oauth``).
- ``alert.ga_property_id``: ignored (alerts are not sent to Google Analytics).

An empty reference value sets nothing and is not reported. Every other reference key is
spelled as ours already (``promoCredit``, ``rate-limits``, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Translated", "from_reference", "is_reference_path"]

Key = tuple[str, ...]

_REDIS_BLOCKS: tuple[Key, ...] = (("v1", "redis"), ("usage", "redis"), ("balance", "redis"))
_REDIS_ADDRESS: Key = ("redis", "address")

_MOVED: dict[Key, Key] = {
    ("signup", "sendgrid", "template_id"): ("emails", "sendgrid", "templates", "verification"),
    ("signup", "sendgrid", "recovery_template_id"): ("emails", "sendgrid", "templates", "recovery"),
    ("signup", "sendgrid", "welcome_template_id"): ("emails", "sendgrid", "templates", "welcome"),
    ("signup", "oauth", "google", "client_id"): ("oauth", "google", "client_id"),
    ("signup", "oauth", "google", "client_secret"): ("oauth", "google", "client_secret"),
}
for _block in _REDIS_BLOCKS:
    _MOVED[(*_block, "address")] = _REDIS_ADDRESS
    _MOVED[(*_block, "user")] = ("redis", "username")
    _MOVED[(*_block, "password")] = ("redis", "password")

_REFERENCE_KEYS: tuple[Key, ...] = (
    *_REDIS_BLOCKS,
    ("signup", "sendgrid"),
    ("signup", "oauth"),
    ("alert", "ga_property_id"),
)
"""Keys (and everything below them) that only the reference has, in the order they are
read: the first redis block to name a server wins."""


@dataclass(frozen=True, slots=True)
class Translated:
    document: dict[str, Any]
    """The document with every reference key moved onto ours or removed."""
    ignored: tuple[str, ...]
    """The reference keys that were dropped (``signup.sendgrid.invite_template_id``)."""


def is_reference_path(keys: list[str]) -> bool:
    """Whether ``keys`` (below the root) lead to or into a key only the reference has."""
    return any(tuple(keys[: len(key)]) == key for key in _REFERENCE_KEYS)


def from_reference(document: Mapping[str, Any]) -> Translated:
    """``document`` with the reference's keys read as described in the module docstring."""
    result = copy.deepcopy(dict(document))
    ignored: list[str] = []
    filled_address = False
    for key in _REFERENCE_KEYS:
        parent = _node(result, key[:-1])
        if not isinstance(parent, dict) or key[-1] not in parent:
            continue
        removed = parent.pop(key[-1])
        for leaf, value in _leaves(key, removed):
            target = _MOVED.get(leaf)
            if target is None:
                ignored.append(".".join(leaf))
            elif value in ("", None):
                continue
            elif _taken(result, target) in ("", None):
                _put(result, target, value)
                filled_address = filled_address or target == _REDIS_ADDRESS
            elif _taken(result, target) != value:
                ignored.append(".".join(leaf))
    redis = result.get("redis")
    if filled_address and isinstance(redis, dict) and "secure" not in redis:
        redis["secure"] = True
    return Translated(result, tuple(ignored))


def _leaves(key: Key, value: Any) -> list[tuple[Key, Any]]:
    if not isinstance(value, Mapping) or not value:
        return [(key, value)]
    found: list[tuple[Key, Any]] = []
    for name, item in value.items():
        found.extend(_leaves((*key, str(name)), item))
    return found


def _node(document: Mapping[str, Any], keys: Key) -> Any:
    node: Any = document
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _taken(document: Mapping[str, Any], target: Key) -> Any:
    """What the document already holds at ``target``; for the Redis address, the host of
    ``redis.url`` when only that is set."""
    found = _node(document, target)
    if found in ("", None) and target == _REDIS_ADDRESS:
        url = _node(document, ("redis", "url"))
        if isinstance(url, str) and url:
            return urlsplit(url).netloc.rpartition("@")[2]
    return found


def _put(node: dict[str, Any], target: Key, value: Any) -> None:
    first, rest = target[0], target[1:]
    if not rest:
        node[first] = value
        return
    if not isinstance(node.get(first), dict):
        node[first] = {}
    _put(node[first], rest, value)
