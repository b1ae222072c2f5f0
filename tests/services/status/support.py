"""Helpers of the status tests: a health probe whose parts the test sets, and accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from m3o.runtime.auth import Account

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
ANN = Account(id="ann-0001", type="customer", scopes=("customer",))
BOB = Account(id="bob-0002", type="customer", scopes=("customer",))
BILLING = Account(id="billing", type="service", scopes=("service",))
LEAK = "10.1.2.3:8080 refused"
"""What a failing check raises: internal detail that must never reach an answer."""


class Probe:
    """A health probe: the services it defines serve, except those ``down`` (raising) and
    those ``hanging`` (never answering); the event stream answers unless ``events_down``."""

    def __init__(
        self,
        services: Collection[str] = ("auth", "customers"),
        *,
        down: Collection[str] = (),
        hanging: Collection[str] = (),
        events_down: bool = False,
    ) -> None:
        self._services = tuple(services)
        self.down = set(down)
        self.hanging = set(hanging)
        self.events_down = events_down
        self.asked: list[tuple[str, float]] = []

    @property
    def services(self) -> tuple[str, ...]:
        return self._services

    async def service(self, name: str, timeout: float) -> None:
        self.asked.append((name, timeout))
        if name in self.hanging:
            await asyncio.Event().wait()
        if name in self.down or name not in self._services:
            raise ConnectionError(LEAK)

    async def events(self) -> None:
        if self.events_down:
            raise ConnectionError(LEAK)
