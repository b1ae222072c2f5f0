"""The configuration document in the database (see :mod:`m3o.runtime.config`), read and
written by path.

A module of its own so that reading the configuration from the environment (every CLI
command does) does not import SQLAlchemy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from m3o.runtime.config import _validate, build_config
from m3o.runtime.config._reference import from_reference, is_reference_path
from m3o.runtime.config.document import (
    ROOT,
    Config,
    _canonical,
    _dig,
    _resolve,
    _split_path,
    _with_value,
    _without,
)
from m3o.runtime.config.tables import config_documents
from m3o.runtime.store import SessionFactory, transaction

__all__ = ["ConfigStore"]

_WRITE_ATTEMPTS = 3
_Change = Callable[[dict[str, Any]], dict[str, Any]]


class ConfigStore:
    """The configuration document in the database, read and written by path.

    The document keeps only what was set, keys in their JSON spelling; defaults and the
    environment are applied by :meth:`load`.
    """

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def document(self) -> dict[str, Any]:
        """The stored document; ``{}`` when nothing was ever set."""
        stored = await self._stored()
        return dict(stored) if isinstance(stored, Mapping) else {}

    async def get(self, path: str) -> Any:
        """The stored value at ``path`` (``micro`` or ``micro.usage.quotas``), secrets
        included; None when nothing is stored there."""
        keys, _ = _resolve(_split_path(path), loose=False)
        stored = await self._stored()
        if stored is None:
            return None
        return copy.deepcopy(_dig(stored, keys))

    async def _stored(self) -> Any:
        """The document's row as stored; None when there is none."""
        async with self._sessions() as session:
            return await session.scalar(
                select(config_documents.c.document).where(config_documents.c.name == ROOT)
            )

    async def set(self, path: str, value: Any) -> tuple[str, ...]:
        """Store ``value`` at ``path``, creating objects on the way.

        The reference's own keys (in ``value``, or the path itself: ``micro.v1.redis``) are
        moved onto ours or dropped before storing, so the stored document holds our keys
        only; the dropped ones are returned (``m3o config set`` prints them). The whole resulting
        document is validated first; a bad one is refused with a :class:`ConfigError`
        naming the key and nothing is written.
        """
        segments = _split_path(path)
        if is_reference_path(segments):
            keys, canonical = segments, value
        else:
            keys, annotation = _resolve(segments, loose=False)
            canonical = _canonical(annotation, value)
        return await self._update(lambda current: _with_value(current, keys, canonical))

    async def delete(self, path: str) -> bool:
        """Remove what is stored at ``path`` (its defaults apply again); False if nothing
        was stored there."""
        keys, _ = _resolve(_split_path(path), loose=False)
        removed = False

        def change(current: dict[str, Any]) -> dict[str, Any]:
            nonlocal removed
            if not keys:
                removed = bool(current)
                return {}
            result, removed = _without(current, keys)
            return result

        await self._update(change)
        return removed

    async def load(self, env: Mapping[str, str]) -> Config:
        """The configuration: the stored document, the overrides in ``env``, the defaults."""
        return build_config(await self.document(), env)

    async def show(self, path: str, env: Mapping[str, str], *, reveal: bool = False) -> Any:
        """The value in force at ``path`` (defaults and ``env`` applied), secrets redacted
        unless ``reveal``: what ``m3o config get`` prints."""
        config = await self.load(env)
        return config.value_at(path, reveal=reveal)

    async def _update(self, change: _Change) -> tuple[str, ...]:
        for _ in range(_WRITE_ATTEMPTS - 1):
            try:
                return await self._update_once(change)
            except IntegrityError:
                # Two first writes raced to insert the row; the loser retries as an update.
                continue
        return await self._update_once(change)

    async def _update_once(self, change: _Change) -> tuple[str, ...]:
        """Apply ``change`` in one transaction; the reference keys it dropped."""
        table = config_documents
        now = datetime.now(UTC)
        async with transaction(self._sessions) as session:
            row = (
                await session.execute(
                    select(table.c.document, table.c.version)
                    .where(table.c.name == ROOT)
                    .with_for_update()
                )
            ).first()
            current = dict(row.document) if row is not None else {}
            translated = from_reference(change(current))
            document = translated.document
            _validate(document, {})
            if row is None:
                await session.execute(
                    insert(table).values(name=ROOT, document=document, version=1, updated=now)
                )
            else:
                await session.execute(
                    update(table)
                    .where(table.c.name == ROOT)
                    .values(document=document, version=row.version + 1, updated=now)
                )
        return translated.ignored
