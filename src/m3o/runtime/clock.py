"""The time every service reads: an injectable clock, UTC and timezone-aware.

Code that needs the time takes a ``clock: Clock = utc_now`` argument, so tests can move
time without sleeping or patching.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
