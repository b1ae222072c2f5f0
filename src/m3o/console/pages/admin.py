"""The console's admin pages."""

from __future__ import annotations

from starlette.routing import BaseRoute

from m3o.console.web import Console

__all__ = ["routes"]


def routes(console: Console) -> list[BaseRoute]:
    """The admin pages."""
    return []
