"""The ``local`` profile's :class:`~m3o.gateway.v1.ports.ServedCharges`: a served call's
charge and its requests/Request event committed in one transaction of the owned counter
store's group commit, before the call is answered; once committed, the events are handed to
this process's consumers (``SqlEventSource.write_on_driver``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest
from m3o.runtime.counters.owned import AfterCommit, OwnedCounterStore, RiderWrite
from m3o.runtime.events import Envelope

__all__ = ["OwnedCharges", "WriteEvents"]

WriteEvents = Callable[[sqlite3.Connection, Sequence[Envelope]], AfterCommit]
"""Writes events into the event log in the transaction of SQLite's own connection; returns
what tells the consumers once it has committed (``SqlEventSource.write_on_driver``)."""


class OwnedCharges:
    def __init__(self, counters: OwnedCounterStore, write_events: WriteEvents) -> None:
        self._counters = counters
        self._write_events = write_events
        self._envelopes: list[Envelope] = []

    async def commit(
        self, request: AdmissionRequest, decision: AdmissionDecision, envelope: Envelope
    ) -> None:
        # Queued and handed to the store with no await between: the group commit that
        # takes this call's charge takes its event too (see _take).
        self._envelopes.append(envelope)
        await self._counters.commit_served(request, decision, self._take)

    def _take(self) -> RiderWrite | None:
        """The events queued since the last group commit, for this one to write."""
        envelopes, self._envelopes = self._envelopes, []
        if not envelopes:
            return None
        return lambda db: self._write_events(db, envelopes)
