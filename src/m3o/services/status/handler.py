"""The status service: runs every check concurrently, each within the timeout.

The answer names each part and ``OK`` or ``NOT_HEALTHY``, never why: the cause (an
exception, a timeout) goes to the log, as the public status page must not leak internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from m3o.runtime.auth import CallContext
from m3o.runtime.logging import get_logger
from m3o.services.status.checks import Check
from m3o.services.status.proto import status_pb2 as pb

__all__ = ["NOT_HEALTHY", "OK", "Status"]

OK = "OK"
NOT_HEALTHY = "NOT_HEALTHY"

_log = get_logger(__name__)


class Status:
    """Implements ``status.Status`` (see ``proto/status.proto``)."""

    def __init__(self, *, checks: Sequence[Check], timeout: float) -> None:
        names = [check.name for check in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"status check names must be unique: {names}")
        self._checks = tuple(checks)
        self._timeout = timeout

    async def _run(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await check.run()
        except TimeoutError:
            _log.warning("status.timeout", part=check.name, timeout=self._timeout)
            return NOT_HEALTHY
        except Exception as exc:  # noqa: BLE001 - any failure of a part means not healthy
            _log.warning("status.not_healthy", part=check.name, error=repr(exc))
            return NOT_HEALTHY
        return OK

    async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
        results = await asyncio.gather(*(self._run(check) for check in self._checks))
        statuses = {c.name: result for c, result in zip(self._checks, results, strict=True)}
        return pb.CallResponse(statuses=statuses, healthy=all(result == OK for result in results))
