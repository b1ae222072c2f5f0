"""Identical alerts within a window become one message with a count.

Two alerts are identical when their category, action, label and value are. The state is
in the counter store, so processes (``m3o run alerts`` twice, behind one Service) share
it. For each kind of alert, under ``alerts:collapse:<hash>``:

- ``:window`` holds the token of the current window, expiring ``collapse_window`` after
  its first alert. Whoever creates it (``set_if_absent``: exactly one caller) posts.
- ``:count:<token>`` counts the alerts that arrived while that window was open; they are
  not posted.
- ``:last`` remembers the token of the latest window for a day, so the first alert of the
  next window reads the previous window's count and its message says
  ``(and N more in the 5 min after the previous message)``.

So a count is sent with the next message of the same kind, once the window it was counted
in has ended; a burst that is never followed by another identical alert within a day is
never counted in a message (each alert is stored, and ``List`` shows them). An alert that
arrives in the instant its window expires may be missed in the count (never posted twice).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import orjson

from m3o.runtime.counters import CounterStore
from m3o.services.alerts.proto import alerts_pb2 as pb

__all__ = ["MEMORY", "Collapser", "describe"]

MEMORY = timedelta(days=1)
"""How long a window's count waits for the next message of its kind."""
_PREFIX = "alerts:collapse:"


def _kind(event: pb.Event) -> str:
    identity = orjson.dumps([event.category, event.action, event.label, event.value])
    return _PREFIX + hashlib.sha256(identity).hexdigest()[:32]


class Collapser:
    def __init__(self, counters: CounterStore, window: timedelta) -> None:
        self._counters = counters
        self._window = window

    @property
    def window(self) -> timedelta:
        return self._window

    async def admit(self, event: pb.Event) -> int | None:
        """None when ``event`` falls in the open window of an identical alert (it is counted
        there, not posted); otherwise it opens a window and is posted, and the result is how
        many identical alerts the previous window held after its message (0: none)."""
        if self._window <= timedelta(0):
            return 0
        kind = _kind(event)
        while True:
            token = uuid.uuid4().hex
            if await self._counters.set_if_absent(f"{kind}:window", token, ttl=self._window):
                return await self._opened(kind, token)
            current = await self._counters.get_value(f"{kind}:window")
            if current is not None:
                await self._counters.incr(f"{kind}:count:{current}", ttl=MEMORY)
                return None
            # The window ended between the two reads: try to open the next one.

    async def _opened(self, kind: str, token: str) -> int:
        previous = await self._counters.get_value(f"{kind}:last")
        await self._counters.set_value(f"{kind}:last", token, ttl=MEMORY)
        if previous is None:
            return 0
        count_key = f"{kind}:count:{previous}"
        skipped = await self._counters.get(count_key)
        if skipped:
            await self._counters.delete(count_key)
        return skipped


def describe(window: timedelta) -> str:
    """``5 min``, ``30 s``, ``2 h``, ``600 ms``: the window as a message says it."""
    if window < timedelta(seconds=1):
        return f"{window // timedelta(milliseconds=1)} ms"
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
