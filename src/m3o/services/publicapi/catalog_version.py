"""The catalog's version: the counter-store key catalog views watch (publicapi owns it,
nobody else spells it)."""

from __future__ import annotations

__all__ = ["VERSION_KEY"]

VERSION_KEY = "publicapi:version"
"""Raised by one after every committed Publish, Update and Remove: catalog views reload
when it changes."""
