"""Serving a test's fake of an outside HTTP API (Slack, Discord, Mixpanel, Mailchimp, ...).

``served(app)`` runs an ASGI app with uvicorn on a free port of 127.0.0.1, in a thread with
its own event loop, and yields its base URL (``http://127.0.0.1:<port>``) until the block
ends. The socket listens before the server starts, so early connections wait in the
backlog instead of being refused. Point the code under test at the URL; assert on what the
fake recorded.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

__all__ = ["served"]

STARTUP_SECONDS = 30


@contextmanager
def served(app: ASGIApp, **options: Any) -> Iterator[str]:
    """``app`` served on a free port until the block ends; yields its base URL.
    ``options`` go to ``uvicorn.Config`` (``ws="websockets-sansio"``, ...)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            **options,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="http-fake", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake HTTP server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
