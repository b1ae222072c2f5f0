"""Counter-store keys publicapi owns (nobody else spells them)."""

from __future__ import annotations

__all__ = ["VERSION_KEY"]

VERSION_KEY = "publicapi:version"
"""Raised by one after every committed Publish, Update and Remove: catalog views reload
when it changes."""
