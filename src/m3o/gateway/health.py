"""``/healthz`` (the process is up) and ``/readyz`` (it can serve: its dependencies answer).

Readiness runs every check concurrently, each with its own timeout. The answer names each
check and whether it passed; why one failed goes to the log only. A process that has begun
to stop (:class:`Stopping`) is not ready, whatever its dependencies say, so a load balancer
stops sending it calls while it finishes those it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from m3o.runtime.logging import get_logger

__all__ = ["DEFAULT_CHECK_TIMEOUT", "Health", "NotReady", "ReadinessCheck", "Stopping"]

_log = get_logger(__name__)

DEFAULT_CHECK_TIMEOUT = 2.0
"""Seconds one readiness check may take before it counts as failed."""

_OK = b'{"status":"ok"}'


class NotReady(Exception):
    """Raised by a check that knows why the process is not ready (not a failure: nothing
    is logged); ``state`` is what ``/readyz`` shows for the check."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class Stopping:
    """Whether the process has begun to stop; its :attr:`check` fails from then on."""

    def __init__(self) -> None:
        self.begun = False

    def begin(self) -> None:
        self.begun = True

    @property
    def check(self) -> ReadinessCheck:
        async def check() -> None:
            if self.begun:
                raise NotReady("stopping")

        return ReadinessCheck("shutdown", check)


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One dependency to check: ``check`` returns when it is usable and raises when not."""

    name: str
    check: Callable[[], Awaitable[None]]


class Health:
    """The two probe endpoints over a fixed list of checks."""

    def __init__(
        self, checks: Sequence[ReadinessCheck], *, timeout: float = DEFAULT_CHECK_TIMEOUT
    ) -> None:
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"readiness check names must be unique: {names}")
        self._checks = tuple(checks)
        self._timeout = timeout

    async def healthz(self, request: Request) -> Response:
        return Response(_OK, media_type="application/json")

    async def _run(self, check: ReadinessCheck) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await check.check()
        except NotReady as exc:
            return exc.state
        except TimeoutError:
            _log.warning("readiness.timeout", check=check.name, timeout=self._timeout)
            return "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency means not ready
            _log.warning("readiness.failed", check=check.name, error=repr(exc))
            return "failed"
        return "ok"

    async def readyz(self, request: Request) -> Response:
        results = await asyncio.gather(*(self._run(c) for c in self._checks))
        checks = {c.name: result for c, result in zip(self._checks, results, strict=True)}
        ready = all(result == "ok" for result in results)
        body = {"status": "ok" if ready else "unavailable", "checks": checks}
        return Response(
            orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
        )
