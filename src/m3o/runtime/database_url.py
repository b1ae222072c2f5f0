"""The URL of a SQLite database file, as the store's engines take it.

Apart from :mod:`m3o.runtime.store` so that the configuration, which names the default
database, can be read without importing SQLAlchemy: every CLI command reads it, and
most of them only call the platform over HTTP.
"""

from __future__ import annotations

__all__ = ["sqlite_url"]


def sqlite_url(path: str) -> str:
    """``path`` (a file, or ``:memory:``) as an engine URL."""
    return f"sqlite+aiosqlite:///{path}"
