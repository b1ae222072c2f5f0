"""The ``local`` profile's :class:`~m3o.gateway.v1.ports.ServedCharges`: a served call's
charge and its requests/Request event committed in one transaction of the owned counter
store's group commit, before the call is answered."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest
from m3o.runtime.counters.owned import OwnedCounterStore, RiderWrite
from m3o.runtime.events import Envelope, EnvelopePublisher

__all__ = ["OwnedCharges"]


class OwnedCharges:
    def __init__(self, counters: OwnedCounterStore, publisher: EnvelopePublisher) -> None:
        self._counters = counters
        self._publisher = publisher
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
        return lambda conn: self._write(conn, envelopes)

    async def _write(self, conn: AsyncConnection, envelopes: Sequence[Envelope]) -> None:
        # The session joins the commit's transaction: its commit() only ends the session's
        # part (running the publisher's after-commit hook, which wakes the consumers; they
        # read once the connection's transaction has committed).
        async with AsyncSession(bind=conn, expire_on_commit=False) as session:
            await self._publisher.publish_envelopes(envelopes, session=session)
            await session.commit()
