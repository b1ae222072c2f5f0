"""What the status service checks: the configured services the platform defines, in the
configured order, then the database, the counter store and the event stream.

A configured name the platform does not define (the reference's list names services this
platform has not built, such as ``mailchimp``) could never be healthy, so it is dropped with
one log line at start rather than reported ``NOT_HEALTHY`` forever; a service the platform
defines but that is not running is ``NOT_HEALTHY``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy import text

from m3o.runtime.counters import CounterStore
from m3o.runtime.logging import get_logger
from m3o.runtime.service import HealthProbe
from m3o.runtime.store import SessionFactory

__all__ = ["COUNTERS", "DATABASE", "EVENTS", "Check", "checked_services", "platform_checks"]

DATABASE = "database"
COUNTERS = "counters"
EVENTS = "events"

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One part to check: ``run`` returns when it is healthy and raises when it is not."""

    name: str
    run: Callable[[], Awaitable[None]]


def checked_services(configured: Sequence[str], defined: Sequence[str]) -> list[str]:
    """``configured`` names the platform ``defined``, in order, once each; the others are
    logged and dropped."""
    known = set(defined)
    chosen = list(dict.fromkeys(name for name in configured if name in known))
    dropped = sorted({name for name in configured if name not in known})
    if dropped:
        _log.info("status.services_not_defined", dropped=dropped, checked=chosen)
    return chosen


async def _database(sessions: SessionFactory) -> None:
    async with sessions() as session:
        await session.execute(text("SELECT 1"))


def platform_checks(
    *,
    services: Sequence[str],
    probe: HealthProbe,
    sessions: SessionFactory,
    counters: CounterStore,
    timeout: float,
) -> list[Check]:
    """A check per service in ``services`` (asked through ``probe``, within ``timeout``),
    then the database, the counter store and the event stream."""
    checks = [Check(name, partial(probe.service, name, timeout)) for name in services]
    return [
        *checks,
        Check(DATABASE, partial(_database, sessions)),
        Check(COUNTERS, counters.ping),
        Check(EVENTS, probe.events),
    ]
