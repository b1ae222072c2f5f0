"""The alerts service (``Alerts``): events stored, alerts posted to Slack and Discord.

``ReportEvent`` (admin and service accounts):

1. The caller is checked, then the request (an event is required; its value must fit the
   database's signed 64-bit integer).
2. An event whose category, action or label contains a block-listed string is dropped
   (case-sensitive, as the reference; empty entries match nothing): not stored, not posted.
3. Every other event is stored, with an id and the time.
4. A ``success`` is not posted. Any other action is posted unless an identical alert
   opened a collapse window that is still open (see :mod:`~m3o.services.alerts.collapse`).
5. Slack and Discord are posted to at once, each on its own: a failure of one is logged
   (``alerts.post_failed``, the destination and the error, never a secret) and neither
   stops the other nor fails the call, so a reporting service never fails because Slack
   is down.

``List`` (admin): recent stored events, newest first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from m3o.runtime.auth import CallContext, verify_admin
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import BadRequest, Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import OutboundError
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.alerts import records
from m3o.services.alerts.collapse import Collapser
from m3o.services.alerts.destinations import Destination
from m3o.services.alerts.message import render
from m3o.services.alerts.proto import alerts_pb2 as pb

__all__ = ["DEFAULT_LIMIT", "EMPTY_EVENT", "MAX_LIMIT", "MAX_VALUE", "SUCCESS", "Alerts"]

_log = get_logger(__name__)

EMPTY_EVENT = "event can't be empty"
SUCCESS = "success"
"""The action that is stored but never posted."""
MAX_VALUE = 2**63 - 1
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class Alerts:
    """Implements ``alerts.Alerts`` (see ``proto/alerts.proto``)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        collapser: Collapser,
        destinations: Sequence[Destination],
        blocklist: Sequence[str] = (),
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._collapser = collapser
        self._destinations = tuple(destinations)
        self._blocklist = tuple(entry for entry in blocklist if entry)
        self._clock = clock

    async def report_event(
        self, request: pb.ReportEventRequest, ctx: CallContext
    ) -> pb.ReportEventResponse:
        verify_admin(ctx)
        if not request.HasField("event"):
            raise BadRequest(ctx.endpoint, EMPTY_EVENT)
        if request.event.value > MAX_VALUE:
            raise BadRequest(ctx.endpoint, f"value must be at most {MAX_VALUE}")
        event = pb.Event()
        event.CopyFrom(request.event)
        if self._blocked(event):
            _log.info("alerts.blocked", category=event.category, action=event.action)
            return pb.ReportEventResponse()
        now = self._clock()
        event.id = str(uuid.uuid4())
        event.created = int(now.timestamp())
        async with transaction(self._sessions) as session:
            await records.add(session, event, now)
        if event.action == SUCCESS:
            return pb.ReportEventResponse()
        skipped = await self._admit(event)
        if skipped is None:
            _log.info("alerts.collapsed", id=event.id, category=event.category)
            return pb.ReportEventResponse()
        await self._post(event, render(event, skipped, self._collapser.window))
        return pb.ReportEventResponse()

    async def list(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        verify_admin(ctx)
        if request.limit < 0:
            raise BadRequest(ctx.endpoint, "limit can't be negative")
        if request.since < 0:
            raise BadRequest(ctx.endpoint, "since can't be negative")
        limit = min(request.limit or DEFAULT_LIMIT, MAX_LIMIT)
        since = datetime.fromtimestamp(request.since, UTC) if request.since else None
        async with self._sessions() as session:
            found = await records.recent(
                session, since=since, category=request.category, limit=limit
            )
        return pb.ListResponse(events=found)

    def _blocked(self, event: pb.Event) -> bool:
        fields = (event.category, event.action, event.label)
        return any(entry in value for entry in self._blocklist for value in fields)

    async def _admit(self, event: pb.Event) -> int | None:
        try:
            return await self._collapser.admit(event)
        except Unavailable as exc:
            # An alert posted twice is better than one lost: post without collapsing.
            _log.warning("alerts.collapse_unavailable", id=event.id, error=str(exc))
            return 0

    async def _post(self, event: pb.Event, text: str) -> None:
        await asyncio.gather(*(self._post_to(target, event, text) for target in self._destinations))

    async def _post_to(self, target: Destination, event: pb.Event, text: str) -> None:
        try:
            await target.post(text)
        except OutboundError as exc:
            _log.error(
                "alerts.post_failed",
                destination=target.name,
                id=event.id,
                category=event.category,
                error=str(exc),
                transient=exc.transient,
            )
