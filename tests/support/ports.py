"""Free TCP ports on 127.0.0.1, for servers the tests start."""

from __future__ import annotations

import socket

__all__ = ["closed_port", "free_port"]


def free_port() -> int:
    """A port nothing listens on now, for a server to take."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on, for a client to find closed."""
    return free_port()
