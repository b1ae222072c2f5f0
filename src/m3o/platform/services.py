"""Every service a platform process can run, in start-up order (auth first), and every
table of the platform: the runtime's and those the services own.

Importing this module imports every service. A service is registered once, by its name in
:data:`m3o.platform.service_names.NAMES`; processes, migrations and the tests take their
lists from here, and a process running one service loads it alone through
:func:`m3o.platform.service_names.definition`.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from m3o.platform.service_names import ACCOUNT_NAMES, NAMES, definition
from m3o.runtime.config import tables as config_tables
from m3o.runtime.counters import tables as counters_tables
from m3o.runtime.events import tables as events_tables
from m3o.runtime.service import ServiceDefinition

__all__ = ["ACCOUNT_NAMES", "METADATA", "SERVICES"]

SERVICES: tuple[ServiceDefinition, ...] = tuple(definition(name) for name in NAMES)
"""Every service's definition, in start-up order (auth first)."""

METADATA: tuple[MetaData, ...] = (
    events_tables.metadata,
    counters_tables.metadata,
    config_tables.metadata,
    *(s.metadata for s in SERVICES if s.metadata is not None),
)
"""The tables of the platform, the runtime's first: what migrations build and check."""
