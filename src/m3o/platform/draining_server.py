"""uvicorn's server, stopping in two steps: readiness first, then the listener.

On the first SIGTERM (or SIGINT) the process is marked as stopping, so ``/readyz`` answers
503 while it goes on serving every call for ``delay`` seconds: the time a load balancer
(a Kubernetes Service) needs to notice and stop sending it new calls. Then uvicorn's own
graceful shutdown runs: it stops accepting connections, gives the calls in flight up to
``timeout_graceful_shutdown`` seconds, and runs the application's shut-down hooks (the
public API commits what it answered and publishes its request events). A second signal
during the delay stops at once (uvicorn's graceful shutdown still runs).
"""

from __future__ import annotations

import time
from types import FrameType

import uvicorn

from m3o.gateway.health import Stopping
from m3o.runtime.logging import get_logger

__all__ = ["DrainingServer"]

_log = get_logger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: Stopping, *, delay: float) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._delay = delay
        self._stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stop_at is None and self._delay > 0:
            # Runs in the main thread between two bytecodes: only plain assignments here.
            self._stopping.begin()
            self._stop_at = time.monotonic() + self._delay
            return
        self._stopping.begin()
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and not self.should_exit:
            left = self._stop_at - time.monotonic()
            if counter % 10 == 0:  # a tick is 0.1 s
                _log.info("server.draining", seconds_left=round(max(left, 0.0), 1))
            if left <= 0:
                self.should_exit = True
        return await super().on_tick(counter)
