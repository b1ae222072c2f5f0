"""Tables the endtoend service owns.

- ``endtoend_codes``: verification codes that reached ``Mailin``, with the time they
  arrived; a run takes the newest that arrived after it asked for one. Codes older than a
  day are removed when a new one arrives.
- ``endtoend_results``: one row per finished run (``Check`` reads the newest); rows older
  than :data:`m3o.services.endtoend.records.RESULT_RETENTION` are removed when a run stores
  its own.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, String, Table, Text

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["codes", "metadata", "results"]

metadata = new_metadata()

codes = Table(
    "endtoend_codes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("received", UTCDateTime, nullable=False),
    Index("ix_endtoend_codes_received", "received"),
)

results = Table(
    "endtoend_results",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("started", UTCDateTime, nullable=False),
    Column("finished", UTCDateTime, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("error", Text, nullable=False),
    Index("ix_endtoend_results_finished", "finished"),
)
