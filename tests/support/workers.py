"""Which pytest-xdist worker this test process is."""

from __future__ import annotations

import os

__all__ = ["worker_index"]


def worker_index(worker: str | None = None) -> int:
    """The number of xdist worker ``worker`` (this process's when None): ``gw1`` -> 1, and
    0 without xdist."""
    if worker is None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
