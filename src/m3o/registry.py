"""Every table-owning module and every service of the platform, in one place.

Migrations, ``m3o serve`` and the tests take their lists from here, so adding a service
means adding it here once.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

__all__ = ["TABLE_MODULES", "all_metadata"]

TABLE_MODULES: tuple[str, ...] = (
    "m3o.runtime.events.tables",
    "m3o.runtime.counters.tables",
    "m3o.runtime.config.tables",
    "m3o.services.auth.tables",
    "m3o.services.customers.tables",
    "m3o.services.emails.tables",
    "m3o.services.signup.tables",
    "m3o.services.balance.tables",
    "m3o.services.publicapi.tables",
    "m3o.services.usage.tables",
    "m3o.services.v1.tables",
    "m3o.services.projects.tables",
)


def all_metadata() -> list[MetaData]:
    """The MetaData of every table-owning module, runtime first."""
    found: list[MetaData] = []
    for name in TABLE_MODULES:
        metadata = importlib.import_module(name).metadata
        if not isinstance(metadata, MetaData):
            raise TypeError(f"{name}.metadata is not a MetaData")
        found.append(metadata)
    return found
