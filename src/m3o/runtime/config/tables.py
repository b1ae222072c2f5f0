"""The config store's table: one JSON document per root name (``micro``).

The document holds only what an operator set (keys in their canonical JSON spelling);
defaults and environment overrides are applied when it is loaded, not stored.
``version`` counts writes, so a process can tell cheaply whether the document changed.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table

from m3o.runtime.store import new_metadata

__all__ = ["config_documents", "metadata"]

metadata = new_metadata()

config_documents = Table(
    "runtime_config",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)
