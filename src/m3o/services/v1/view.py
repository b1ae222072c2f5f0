"""The gateway's view of v1: key records read from the counter store, and the names there.

The v1 service mirrors each key record into the counter store as the JSON value
``v1:key:<hash>`` (written on generate, block and unblock, deleted on revoke; it expires
after :data:`MIRROR_TTL`, or when the key does, so that a write lost to a failure heals by
itself). The gateway
reads it with :func:`read_key_record`; when nothing is there it asks the v1 service
(``ResolveKey{hash}``), which reloads it from the table. Nobody else spells these names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import orjson

from m3o.runtime.counters import CounterStore
from m3o.runtime.logging import get_logger
from m3o.services.v1.keys.format import hash_matches
from m3o.services.v1.proto import v1_pb2 as pb

__all__ = [
    "ALL_APIS",
    "MIRROR_TTL",
    "RATE_WINDOW",
    "KeyRecord",
    "KeyStatus",
    "mirror_name",
    "rate_key",
    "read_key_record",
]

_log = get_logger(__name__)

ALL_APIS = "*"
"""The scope that lets a key call every API."""
MIRROR_TTL = timedelta(minutes=5)
"""How long a mirrored record lives in the counter store before it is reloaded."""
RATE_WINDOW = timedelta(seconds=1)
"""The window of the per-project rate limit counted at :func:`rate_key`."""


class KeyStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as the gateway checks calls against it.

    ``owner`` is the project the key belongs to (the caller of its requests, and the
    ``apikey_owner`` of its auth account, whose id is the key's id); ``billing_account`` the
    customer who pays for that project.
    """

    id: str
    hash: str
    scopes: tuple[str, ...]
    owner: str
    billing_account: str
    status: KeyStatus = KeyStatus.ACTIVE
    status_message: str = ""
    expires: int = 0
    """When the key stops working, unix seconds; 0: never."""
    legacy: bool = False
    """Imported from M3O: ``hash`` is the plain SHA-256 of the key, not our keyed hash."""

    @property
    def blocked(self) -> bool:
        return self.status is KeyStatus.BLOCKED

    def expired(self, now: float) -> bool:
        """Whether the key has stopped working at ``now`` (unix seconds)."""
        return 0 < self.expires <= now

    def permits(self, api_name: str) -> bool:
        """Whether a scope lets the key call ``api_name`` (compared lower-cased)."""
        if ALL_APIS in self.scopes:  # most keys: checked without a loop in Python
            return True
        wanted = api_name.lower()
        return any(scope.lower() == wanted for scope in self.scopes)

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "id": self.id,
                "hash": self.hash,
                "scopes": list(self.scopes),
                "owner": self.owner,
                "billing_account": self.billing_account,
                "status": self.status.value,
                "status_message": self.status_message,
                "expires": self.expires,
                "legacy": self.legacy,
            }
        ).decode()

    @classmethod
    def from_json(cls, raw: str) -> KeyRecord:
        """Parse :meth:`to_json`'s output; ValueError when ``raw`` is not a key record."""
        try:
            data = orjson.loads(raw)
            scopes = data["scopes"]
            if not isinstance(scopes, list):
                raise TypeError("scopes is not a list")
            return cls(
                id=str(data["id"]),
                hash=str(data["hash"]),
                scopes=tuple(str(scope) for scope in scopes),
                owner=str(data["owner"]),
                billing_account=str(data["billing_account"]),
                status=KeyStatus(data["status"]),
                status_message=str(data.get("status_message", "")),
                expires=int(data.get("expires", 0)),
                legacy=data.get("legacy", False) is True,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a key record: {exc}") from None

    def to_proto(self) -> pb.KeyRecord:
        return pb.KeyRecord(
            id=self.id,
            hash=self.hash,
            scopes=list(self.scopes),
            owner=self.owner,
            billing_account=self.billing_account,
            status=self.status.value,
            status_message=self.status_message,
            expires=self.expires,
            legacy=self.legacy,
        )

    @classmethod
    def from_proto(cls, message: pb.KeyRecord) -> KeyRecord:
        """The record a ``ResolveKey`` response carries."""
        return cls(
            id=message.id,
            hash=message.hash,
            scopes=tuple(message.scopes),
            owner=message.owner,
            billing_account=message.billing_account,
            status=KeyStatus(message.status or KeyStatus.ACTIVE.value),
            status_message=message.status_message,
            expires=message.expires,
            legacy=message.legacy,
        )


def mirror_name(key_hash: str) -> str:
    """The counter-store name of the record of the key with hash ``key_hash``."""
    return f"v1:key:{key_hash}"


def rate_key(project_id: str) -> str:
    """The counter of a project's calls in the current :data:`RATE_WINDOW`."""
    return f"v1:rate:{project_id}"


async def read_key_record(
    counters: CounterStore, key_hash: str, *, now: float | None = None
) -> KeyRecord | None:
    """The mirrored record of the key with ``key_hash``; None when the counter store holds
    none (ask ``v1.ResolveKey``), holds something unreadable, or the key has expired at
    ``now`` (unix seconds, the current time by default)."""
    raw = await counters.get_value(mirror_name(key_hash))
    if raw is None:
        return None
    try:
        record = KeyRecord.from_json(raw)
    except ValueError:
        _log.warning("v1.mirror_unreadable")
        return None
    if not hash_matches(key_hash, record.hash):
        _log.warning("v1.mirror_mismatch", key_id=record.id)
        return None
    if record.expired(time.time() if now is None else now):
        return None
    return record
