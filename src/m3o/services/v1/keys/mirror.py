"""Writing the counter-store copy of key records that the gateway reads (see ``view.py``).

The table is the truth; the mirror is written after it changes and may lag. Every entry
expires after :data:`~m3o.services.v1.view.MIRROR_TTL` (or when its key does), so one
lost to a failure, or left stale by a race between writers, heals by itself within that
time; a missing entry is reloaded by ``ResolveKey``, which refuses an expired key.

The counter store is never written inside a database transaction: in the ``local``
profile it lives in the same SQLite file, whose writers queue behind one another.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.services.v1.view import MIRROR_TTL, KeyRecord, mirror_name

__all__ = ["KeyMirror"]

_log = get_logger(__name__)


class KeyMirror:
    """``clock`` gives the current UTC time (for keys that expire)."""

    def __init__(self, counters: CounterStore, *, clock: Clock = utc_now) -> None:
        self._counters = counters
        self._clock = clock

    async def put(self, record: KeyRecord) -> None:
        """Write ``record`` (replacing what is there) until it expires, at most
        ``MIRROR_TTL``; an expired key's entry is deleted instead. Raises Unavailable."""
        ttl = MIRROR_TTL
        if record.expires:
            left = timedelta(seconds=record.expires - self._clock().timestamp())
            if left <= timedelta(0):
                await self.remove(record.hash)
                return
            ttl = min(ttl, left)
        await self._counters.set_value(mirror_name(record.hash), record.to_json(), ttl=ttl)

    async def remove(self, *key_hashes: str) -> None:
        """Delete the entries of these keys. Raises Unavailable."""
        if key_hashes:
            await self._counters.delete(*(mirror_name(h) for h in key_hashes))

    async def try_remove(self, key_id: str, key_hash: str) -> bool:
        """Delete one entry; a failure is logged, not raised (it expires anyway)."""
        try:
            await self.remove(key_hash)
        except M3OError as exc:
            _log.error("v1.mirror_remove_failed", key_id=key_id, error=exc.detail)
            return False
        return True

    async def refresh(self, records: Iterable[KeyRecord]) -> None:
        """Write records whose row just changed. One that cannot be written is deleted
        instead (the gateway then reloads it); if that fails too the error is logged and
        the stale entry lives until it expires."""
        for record in records:
            try:
                await self.put(record)
            except M3OError as exc:
                _log.error("v1.mirror_write_failed", key_id=record.id, error=exc.detail)
                await self.try_remove(record.id, record.hash)
