"""SaveEvent and ListEvents: custom analytics events (``api-calls``, ``api-visits``, ...).

A table is any name of letters, digits, ``-`` and ``_`` (at most 64); an event is a JSON
object of at most :data:`MAX_RECORD_BYTES`, stored with ``id`` (the one given, else a uuid4)
and ``createdAt`` (unix seconds) added, as the reference did. Ids are unique per table.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from sqlalchemy.exc import IntegrityError

from m3o.runtime.auth import CallContext, verify_admin
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import BadRequest, Conflict
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.records import AnalyticsEvent, insert_event, latest_events

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_RECORD_BYTES", "Analytics"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_RECORD_BYTES = 64 * 1024
MAX_ID_LENGTH = 255
_TABLE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Analytics:
    def __init__(self, *, sessions: SessionFactory, clock: Clock = utc_now) -> None:
        self._sessions = sessions
        self._clock = clock

    async def save_event(
        self, request: pb.SaveEventRequest, ctx: CallContext
    ) -> pb.SaveEventResponse:
        verify_admin(ctx)
        if not request.HasField("event"):
            raise BadRequest(ctx.endpoint, "Missing event")
        event = request.event
        table = _table(ctx, event.table)
        event_id = event.id.strip() or str(uuid.uuid4())
        if len(event_id) > MAX_ID_LENGTH:
            raise BadRequest(ctx.endpoint, f"id is longer than {MAX_ID_LENGTH} characters")
        now = self._clock()
        record: dict[str, Any] = json_format.MessageToDict(event.record)
        record.update(id=event_id, createdAt=int(now.timestamp()))
        if len(orjson.dumps(record)) > MAX_RECORD_BYTES:
            raise BadRequest(ctx.endpoint, f"record is larger than {MAX_RECORD_BYTES} bytes")
        try:
            async with transaction(self._sessions) as session:
                await insert_event(session, AnalyticsEvent(event_id, table, record, now))
        except IntegrityError:
            raise Conflict(
                "usage.saveevent.exists", "An event with this id exists in the table"
            ) from None
        return pb.SaveEventResponse(id=event_id)

    async def list_events(
        self, request: pb.ListEventsRequest, ctx: CallContext
    ) -> pb.ListEventsResponse:
        verify_admin(ctx)
        table = _table(ctx, request.table)
        if not 0 <= request.limit <= MAX_LIMIT:
            raise BadRequest(ctx.endpoint, f"limit must be between 0 and {MAX_LIMIT}")
        async with self._sessions() as session:
            found = await latest_events(session, table, request.limit or DEFAULT_LIMIT)
        return pb.ListEventsResponse(
            events=[
                pb.Event(id=event.id, table=event.table, record=_struct(event.record))
                for event in found
            ]
        )


def _table(ctx: CallContext, table: str) -> str:
    table = table.strip()
    if not table:
        raise BadRequest(ctx.endpoint, "Missing table")
    if not _TABLE.fullmatch(table):
        raise BadRequest(ctx.endpoint, "Invalid table: letters, digits, - and _ only, at most 64")
    return table


def _struct(record: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(record)
    return struct
