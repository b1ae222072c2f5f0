"""PostgreSQL databases of finished tests, dropped on a thread of their own.

``DROP DATABASE`` makes the server write a checkpoint and waits for it: 0.05 to 1.7 s
while the suite keeps PostgreSQL busy (timed here), once 22 s. A test that made a database
hands it over here and goes on; the drops run one at a time, in order, so no more than the
databases of the tests just finished exist at once. The session waits for them at its end
(``wait_for_drops``) and fails there if one could not be dropped.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

__all__ = ["drop_later", "wait_for_drops"]

_pending: queue.Queue[tuple[URL, str]] = queue.Queue()
_failures: list[str] = []
_started = threading.Lock()
_thread: threading.Thread | None = None


def drop_later(server: URL, name: str) -> None:
    """Drop the database ``name`` of ``server`` (closing whatever still uses it) soon."""
    global _thread  # noqa: PLW0603 - one dropping thread per test process
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=_drop_each, name="database-drops", daemon=True)
            _thread.start()
    _pending.put((server, name))


def wait_for_drops() -> None:
    """Wait until every database handed over is dropped; AssertionError if one was not."""
    _pending.join()
    assert not _failures, "databases not dropped: " + "; ".join(_failures)


def _drop_each() -> None:
    while True:
        server, name = _pending.get()
        try:
            asyncio.run(_drop(server, name))
        except Exception as exc:  # reported by wait_for_drops
            _failures.append(f"{name}: {exc!r}")
        finally:
            _pending.task_done()


async def _drop(server: URL, name: str) -> None:
    engine = create_async_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()
