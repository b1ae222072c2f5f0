"""Authorising callers in every process: the auth service's access rules, applied locally.

:class:`CachedRules` applies auth's rules to every call from a short-lived copy; it takes
the callable that fetches them, so the runtime knows nothing of the auth service's code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from m3o.runtime.auth import Account, is_service
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import Forbidden, M3OError, Unauthorized, Unavailable, error_id
from m3o.runtime.logging import get_logger

__all__ = [
    "ANY_ACCOUNT",
    "DENY",
    "GRANT",
    "PUBLIC",
    "SERVICE_RESOURCE",
    "CachedRules",
    "RuleSpec",
    "check_access",
    "is_allowed",
]

_log = get_logger(__name__)

GRANT: Final = "grant"
DENY: Final = "deny"
PUBLIC: Final = ""
"""Rule scope matching every caller, anonymous ones included."""
ANY_ACCOUNT: Final = "*"
"""Rule scope (and resource part) matching anything."""
SERVICE_RESOURCE: Final = "service"
"""Resource type of the platform's services' endpoints."""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """An access rule as the runtime applies it (the auth service's Rule, flattened).

    ``resource_type``, ``resource_name`` and ``endpoint`` each match equal values or
    anything when ``"*"``. ``scope``: ``""`` matches every caller, ``"*"`` every account,
    else accounts holding that scope. ``access`` is ``"grant"`` or ``"deny"``.
    """

    id: str
    resource_type: str
    resource_name: str
    endpoint: str
    scope: str
    access: str
    priority: int

    def applies(
        self, account: Account | None, resource_type: str, resource_name: str, endpoint: str
    ) -> bool:
        return (
            self.resource_type in (ANY_ACCOUNT, resource_type)
            and self.resource_name in (ANY_ACCOUNT, resource_name)
            and self.endpoint in (ANY_ACCOUNT, endpoint)
            and _scope_matches(self.scope, account)
        )


def _scope_matches(scope: str, account: Account | None) -> bool:
    if scope == PUBLIC:
        return True
    if account is None:
        return False
    return scope == ANY_ACCOUNT or account.has_scope(scope)


def is_allowed(
    rules: Iterable[RuleSpec],
    account: Account | None,
    resource_type: str,
    resource_name: str,
    endpoint: str,
) -> bool:
    """The highest-priority matching rule decides; at equal priority deny beats grant; no
    matching rule denies."""
    best: int | None = None
    allowed = False
    for rule in rules:
        if not rule.applies(account, resource_type, resource_name, endpoint):
            continue
        granted = rule.access == GRANT
        if best is None or rule.priority > best:
            best, allowed = rule.priority, granted
        elif rule.priority == best and not granted:
            allowed = False
    return allowed


def check_access(
    rules: Iterable[RuleSpec],
    account: Account | None,
    resource_type: str,
    resource_name: str,
    endpoint: str,
    *,
    error_id: str,
) -> None:
    """Pass, or raise Unauthorized (anonymous caller) or Forbidden (a refused account).

    Service accounts pass every rule: they are trusted at this level, and handlers still
    check their roles.
    """
    if account is not None and is_service(account):
        return
    if is_allowed(rules, account, resource_type, resource_name, endpoint):
        return
    if account is None:
        raise Unauthorized(error_id, "Unauthorized")
    raise Forbidden(error_id, "Forbidden")


class CachedRules:
    """Implements :class:`~m3o.runtime.rpc.AccessRules` from a copy of auth's rules.

    The copy is refreshed when older than ``ttl`` (one fetch at a time); if a refresh
    fails the previous copy stays in use until the next attempt, one ``ttl`` later. With
    no copy at all, calls are Unavailable. :meth:`invalidate` forces a refresh on the next
    call (the auth service calls it after changing a rule in this process).
    """

    def __init__(
        self,
        fetch_rules: Callable[[], Awaitable[Sequence[RuleSpec]]],
        ttl: timedelta = timedelta(seconds=5),
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._fetch_rules = fetch_rules
        self._ttl = ttl
        self._clock = clock
        self._rules: tuple[RuleSpec, ...] | None = None
        self._next_refresh: datetime | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._next_refresh = None

    async def verify(self, account: Account | None, service: str, endpoint: str) -> None:
        if account is not None and is_service(account):
            return
        rules = await self._current()
        check_access(
            rules,
            account,
            SERVICE_RESOURCE,
            service,
            endpoint,
            error_id=error_id(service, endpoint),
        )

    async def _current(self) -> tuple[RuleSpec, ...]:
        if self._fresh() and self._rules is not None:
            return self._rules
        async with self._lock:
            if not self._fresh() or self._rules is None:
                await self._refresh()
            if self._rules is None:
                raise Unavailable("auth", "Access rules are unavailable")
            return self._rules

    def _fresh(self) -> bool:
        return self._next_refresh is not None and self._clock() < self._next_refresh

    async def _refresh(self) -> None:
        try:
            rules = tuple(await self._fetch_rules())
        except (M3OError, TimeoutError) as exc:
            _log.warning("tokens.rules_fetch_failed", error=type(exc).__name__)
            if self._rules is not None:
                self._next_refresh = self._clock() + self._ttl
            return
        self._rules = rules
        self._next_refresh = self._clock() + self._ttl
