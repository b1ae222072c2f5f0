"""Configuration value types: durations, secret URLs, comma lists, and :class:`ConfigError`;
:func:`sqlite_url`, the default database's URL (here, not in :mod:`m3o.runtime.store`, so
that reading the configuration, as every CLI command does, does not import SQLAlchemy).

The sections of :mod:`m3o.runtime.config.sections` are built from these; nothing here knows
about sections, paths or the config store.
"""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "CommaList",
    "ConfigError",
    "Duration",
    "SecretUrl",
    "format_duration",
    "parse_duration",
    "sqlite_url",
]


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad key, one per line.

    ``path`` is the first bad key (``usage.quotas.free``), relative to the root.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


# --- durations -----------------------------------------------------------------------------

_DURATION_UNITS_US: dict[str, Fraction] = {
    "ns": Fraction(1, 1000),
    "us": Fraction(1),
    "µs": Fraction(1),
    "μs": Fraction(1),
    "ms": Fraction(1000),
    "s": Fraction(1_000_000),
    "m": Fraction(60_000_000),
    "h": Fraction(3_600_000_000),
    "d": Fraction(86_400_000_000),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_DURATION_HELP = "expected a duration such as '24h', '5m', '30s', '300ms' or whole seconds"


def parse_duration(value: object) -> timedelta:
    """``"1h30m"``, ``"300ms"``, ``"2d"``, ``"90"`` or ``90`` (seconds) as a timedelta."""
    if isinstance(value, timedelta):
        total = value
    elif isinstance(value, int) and not isinstance(value, bool):
        total = timedelta(seconds=value)
    elif isinstance(value, str):
        total = _parse_duration_text(value.strip())
    else:
        raise ValueError(_DURATION_HELP)
    if total < timedelta(0):
        raise ValueError("a duration must not be negative")
    return total


def _parse_duration_text(text: str) -> timedelta:
    if not text:
        raise ValueError(_DURATION_HELP)
    if text.isdigit():
        return timedelta(seconds=int(text))
    position = 0
    micros = Fraction(0)
    while position < len(text):
        part = _DURATION_PART.match(text, position)
        if part is None:
            raise ValueError(_DURATION_HELP)
        micros += Fraction(part.group(1)) * _DURATION_UNITS_US[part.group(2)]
        position = part.end()
    return timedelta(microseconds=round(micros))


def format_duration(value: timedelta) -> str:
    """The compact notation of a duration: ``"24h"``, ``"1h30m"``, ``"1s500ms"``, ``"0s"``."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    parts: list[str] = []
    for unit, size in (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000)):
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    if micros:
        parts.append(f"{micros}us")
    return sign + "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A duration: ``"24h"``-style text or whole seconds in, ``timedelta`` out."""


class _SecretUrlMarker:
    """Marks a URL whose password part is a secret (database and Redis URLs)."""


SecretUrl = Annotated[str, _SecretUrlMarker()]
"""A URL that may carry a password; the password is masked in :meth:`Config.dump`."""


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]
"""A list of strings, also accepted as one comma-separated string (the reference's form)."""


def sqlite_url(path: str) -> str:
    """The engine URL of the SQLite database file at ``path`` (or ``:memory:``)."""
    return f"sqlite+aiosqlite:///{path}"
