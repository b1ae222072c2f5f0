"""Typed configuration: one section model per area, the config store, environment overrides.

The configuration is one JSON document, stored in the config store under the root name
``micro`` (``m3o config set micro "$(cat config.example.json)"``). Each top-level key is a
section (``usage``, ``stripe``, ``v1``, ...) validated by a pydantic model; every key has a
default, so an empty document is a valid configuration. Unknown keys are refused (a typo
never passes silently) and keys keep the reference's JSON spelling where it had one
(``promoCredit``, ``ignoreList``, ``rate-limits``); the Python field name is accepted too.
The reference's keys that have no field of ours (``v1.redis``, ``signup.sendgrid``, ...)
are accepted as well: :mod:`m3o.runtime.config._reference` moves them onto ours or drops
them. :meth:`ConfigStore.set` returns the keys it dropped (``m3o config set`` prints them in
one warning) and stores our keys only; :func:`build_config` given such a document logs one
warning, ``config.reference_keys_ignored``, naming them.

Paths name a part of the document: ``micro`` is the whole document, ``micro.usage.quotas``
one part of it. :class:`ConfigStore` reads and writes parts; every write validates the
whole resulting document first.

Environment variables override the stored document:
``M3O_<SECTION>__<KEY>[__<SUBKEY>...]=value``. Levels are separated by a double
underscore; section and key names match field names and JSON keys case-insensitively
(``M3O_V1__RATE_LIMITS__PRO`` sets ``v1.rate-limits.pro``); keys of free-form maps (tiers)
match an existing key case-insensitively, else are lower-cased. The value is parsed as JSON
when it parses, else taken as a string; a string-typed key always takes the text as is (a
numeric password stays a string). Variables beginning ``M3O_`` without a double underscore
(``M3O_TEST_POSTGRES``) are not config. The environment is always passed in;
:func:`process_environment` is the one place that reads ``os.environ``, for the CLI.

Durations are written ``"24h"``, ``"5m"``, ``"30s"``, ``"300ms"`` (Go's notation, plus
``d`` for days) or as whole seconds, and read as :class:`~datetime.timedelta`. Secrets are
``SecretStr``: they never appear in ``repr``, logs or :meth:`Config.dump` unless
``reveal=True``; passwords inside database and Redis URLs are masked the same way.

Every problem raises :class:`ConfigError`, whose message names the bad key:
``usage.quotas.free: Input should be a valid integer``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from m3o.runtime.config._reference import from_reference, is_reference_path
from m3o.runtime.config.document import (
    ROOT,
    Config,
    _canonical,
    _dig,
    _parse_text,
    _resolve,
    _split_path,
    _with_value,
    _without,
    parse_value,
)
from m3o.runtime.config.sections import RedisConfig
from m3o.runtime.config.tables import config_documents
from m3o.runtime.config.values import ConfigError, format_duration, parse_duration
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction

__all__ = [
    "Config",
    "ConfigError",
    "ConfigStore",
    "RedisConfig",
    "build_config",
    "format_duration",
    "parse_duration",
    "parse_value",
    "process_environment",
]

ENV_PREFIX = "M3O_"
ENV_SEPARATOR = "__"

_log = get_logger(__name__)


def _warn_ignored(ignored: tuple[str, ...]) -> None:
    if ignored:
        _log.warning(
            "config.reference_keys_ignored",
            ignored=list(ignored),
            detail="keys of the reference's config that mean nothing here; nothing was set",
        )


# --- validation and the environment --------------------------------------------------------


def _validate(document: Mapping[str, Any], sources: Mapping[tuple[str, ...], str]) -> Config:
    try:
        return Config.model_validate(document)
    except ValidationError as exc:
        raise _config_error(exc, sources) from None


def _config_error(exc: ValidationError, sources: Mapping[tuple[str, ...], str]) -> ConfigError:
    lines: list[str] = []
    first = ""
    for error in exc.errors():
        location = tuple(str(part) for part in error["loc"])
        where = ".".join(location) or ROOT
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        origin = next(
            (name for keys, name in sources.items() if location[: len(keys)] == keys), None
        )
        lines.append(f"{where}: {message}" + (f" (from {origin})" if origin else ""))
        first = first or where
    return ConfigError("\n".join(lines), first)


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """``(variable, levels)`` of every override in ``env``, shallow ones first."""
    found: list[tuple[str, list[str]]] = []
    for name in env:
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        levels = name[len(ENV_PREFIX) :].split(ENV_SEPARATOR)
        if any(not level for level in levels):
            raise ConfigError(f"{name}: empty level in the variable name", name)
        found.append((name, levels))
    return sorted(found, key=lambda item: (len(item[1]), item[0]))


def _with_environment(
    document: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    defaults = Config().dump(reveal=True)
    merged = copy.deepcopy(dict(document))
    sources: dict[tuple[str, ...], str] = {}
    for name, levels in _env_overrides(env):
        try:
            keys, annotation = _resolve(levels, loose=True, existing=(merged, defaults))
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}", exc.path) from None
        merged = _with_value(
            merged, keys, _canonical(annotation, _parse_text(annotation, env[name]))
        )
        sources[tuple(keys)] = name
    return merged, sources


def build_config(document: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """The configuration ``document`` describes, with the overrides in ``env`` applied.

    The reference's own keys are read as :mod:`m3o.runtime.config._reference` says; those
    dropped are named in one warning. Raises :class:`ConfigError` naming every bad key (and
    the variable it came from).
    """
    translated = from_reference(document)
    _warn_ignored(translated.ignored)
    merged, sources = _with_environment(translated.document, env)
    return _validate(merged, sources)


def process_environment() -> Mapping[str, str]:
    """This process's environment variables: the CLI passes them to :meth:`ConfigStore.load`.

    The only place configuration reads ``os.environ``; everything else receives the mapping.
    """
    return dict(os.environ)


# --- the config store ----------------------------------------------------------------------

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
        async with self._sessions() as session:
            stored = await session.scalar(
                select(config_documents.c.document).where(config_documents.c.name == ROOT)
            )
        return dict(stored) if isinstance(stored, Mapping) else {}

    async def get(self, path: str) -> Any:
        """The stored value at ``path`` (``micro`` or ``micro.usage.quotas``), secrets
        included; None when nothing is stored there."""
        keys, _ = _resolve(_split_path(path), loose=False)
        async with self._sessions() as session:
            stored = await session.scalar(
                select(config_documents.c.document).where(config_documents.c.name == ROOT)
            )
        if stored is None:
            return None
        return copy.deepcopy(_dig(stored, keys))

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
