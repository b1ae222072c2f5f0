"""Typed configuration: one section model per area, the config store, environment overrides.

The configuration is one JSON document, stored in the config store under the root name
``micro`` (``m3o config set micro "$(cat config.example.json)"``). Each top-level key is a
section (``usage``, ``stripe``, ``v1``, ...) validated by a pydantic model; every key has a
default, so an empty document is a valid configuration. Unknown keys are refused (a typo
never passes silently) and keys keep the reference's JSON spelling where it had one
(``promoCredit``, ``ignoreList``, ``rate-limits``); the Python field name is accepted too.
The reference's keys that have no field of ours (``v1.redis``, ``signup.sendgrid``, ...)
are accepted as well: :mod:`m3o.runtime.config._reference` moves them onto ours or drops
them. The config store (:class:`~m3o.runtime.config.stored.ConfigStore`, the document in
the database) returns the keys it dropped from :meth:`set` (``m3o config set`` prints them
in one warning) and stores our keys only; :func:`build_config` given such a document logs
one warning, ``config.reference_keys_ignored``, naming them.

Paths name a part of the document: ``micro`` is the whole document, ``micro.usage.quotas``
one part of it. The config store reads and writes parts; every write validates the whole
resulting document first. It is a module of its own, so that reading the configuration
(every CLI command does) does not import SQLAlchemy.

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
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from m3o.runtime.config._reference import from_reference
from m3o.runtime.config.document import (
    ROOT,
    Config,
    _canonical,
    _parse_text,
    _resolve,
    _with_value,
    parse_value,
)
from m3o.runtime.config.sections import RedisConfig
from m3o.runtime.config.values import ConfigError, format_duration, parse_duration
from m3o.runtime.logging import get_logger

__all__ = [
    "Config",
    "ConfigError",
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
    """This process's environment variables: the CLI passes them to
    :meth:`~m3o.runtime.config.stored.ConfigStore.load`.

    The only place configuration reads ``os.environ``; everything else receives the mapping.
    """
    return dict(os.environ)
