"""The one way to run blocking or CPU-heavy work (password hashing, sync libraries).

Such work runs on a worker thread, so the event loop keeps serving other calls meanwhile.
Argon2 (argon2-cffi) releases the GIL while it hashes, so hashes on several threads really
run in parallel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

__all__ = ["run_blocking"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def run_blocking(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run ``fn(*args)`` on a worker thread and return its result (or raise its error)."""
    return await asyncio.to_thread(fn, *args)
