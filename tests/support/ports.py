"""Free TCP ports on 127.0.0.1, for servers the tests start.

A port from ``bind(0)`` is free when it is asked for, but the server that takes it starts
later: in between, a server started by another test process could be given the same port,
and a test would then talk to someone else's server (a health check answered, then a login
refused). So each pytest-xdist worker hands out ports from its own block, one after the other,
below the kernel's ephemeral range (which ``bind(0)`` and outgoing connections use): two
workers of a run never hand out the same port, and one worker reuses a port only after its
whole block. Runs side by side (a developer's and a fresh clone's) start their blocks at
different places, from the run's id.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket

from support.workers import worker_index

__all__ = ["BLOCK", "FIRST_PORT", "closed_port", "free_port", "worker_block"]

FIRST_PORT = 12_000
"""The first port handed out; the ports below are left to the machine's own servers."""
BLOCK = 1_000
"""Ports in one worker's block."""
BLOCKS = 20
"""Blocks in all: the last ends at 31,999, below the ephemeral range (32,768 on)."""

_next: dict[str, itertools.count[int]] = {}


def worker_block(worker: str, run: str = "") -> range:
    """The ports of xdist worker ``worker`` (``gw0``, ``gw1``, …; ``""`` without xdist) in the
    run ``run`` (xdist's run id)."""
    index = worker_index(worker)
    shift = int.from_bytes(hashlib.sha256(run.encode()).digest()[:4], "big") if run else 0
    start = FIRST_PORT + ((shift + index) % BLOCKS) * BLOCK
    return range(start, start + BLOCK)


def free_port() -> int:
    """A port nothing listens on now and no other test process hands out, for a server."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    block = worker_block(worker, os.environ.get("PYTEST_XDIST_TESTRUNUID", ""))
    counter = _next.setdefault(worker, itertools.count())
    for _ in range(len(block)):
        port = block[next(counter) % len(block)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # held by a server still running, or by something else on the machine
            return port
    raise RuntimeError(f"no free port in {block}")


def closed_port() -> int:
    """A port nothing listens on, for a client to find closed."""
    return free_port()
