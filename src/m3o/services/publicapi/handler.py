"""The publicapi service: the catalog of public APIs.

Every change and its event are written in one transaction (the outbox); once it has
committed, the counter ``publicapi:version`` is raised so that every catalog view (the
gateway's) reloads within a second. Should raising it fail, the change stands and views
still pick it up at their next full refresh (every minute).

Descriptors are fetched by gRPC reflection before any transaction begins (an upstream may
be slow); an Update then applies its changes only if the entry is still as it was read,
and tries again otherwise.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.publicapi import TOPIC, Event, EventType
from m3o.events.publicapi import events_pb2 as events_pb
from m3o.runtime.auth import CallContext, is_admin, is_service, verify_admin
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, Conflict, NotFound, Unavailable
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.publicapi import records
from m3o.services.publicapi.catalog_version import VERSION_KEY
from m3o.services.publicapi.drafts import DescriptorFetcher, Finisher, apply_update, draft_from
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.records import ApiRecord
from m3o.services.publicapi.validation import storable

__all__ = ["Publicapi"]

_ATTEMPTS = 3
_log = get_logger(__name__)


def _event(kind: EventType.ValueType, name: str) -> Event:
    if kind == EventType.EventTypeAPIEnable:
        return Event(type=kind, api_enable=events_pb.APIEnable(name=name))
    if kind == EventType.EventTypeAPIDisable:
        return Event(type=kind, api_disable=events_pb.APIDisable(name=name))
    return Event(type=kind, api_update=events_pb.APIUpdate(name=name))


def _sees_upstream(ctx: CallContext) -> bool:
    """Admins and services see where upstreams run and their descriptors; others do not."""
    account = ctx.account
    return account is not None and (is_admin(account) or is_service(account))


class Publicapi:
    """Implements ``publicapi.Publicapi`` (see ``proto/publicapi.proto``)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        counters: CounterStore,
        fetch_descriptors: DescriptorFetcher,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._counters = counters
        self._finisher = Finisher(fetch_descriptors)
        self._clock = clock

    async def publish(self, request: pb.PublishRequest, ctx: CallContext) -> pb.PublishResponse:
        account = verify_admin(ctx)
        if not request.api.name.strip():
            raise BadRequest(ctx.endpoint, "Missing API name")
        now = self._clock()
        template = ApiRecord(
            id="", name="", created=now, updated=now, upstream_address="",
            upstream_protocol="", owner_id=account.id,
        )  # fmt: skip
        draft = await self._finisher.finish(
            ctx.endpoint, draft_from(ctx.endpoint, request.api, template)
        )
        attempt = 1
        while True:
            try:
                async with transaction(self._sessions) as session:
                    stored = await self._upsert(session, draft)
            except IntegrityError:
                # A concurrent Publish of this name inserted first: the next try updates it.
                if attempt >= _ATTEMPTS:
                    raise
                attempt += 1
            else:
                break
        _log.info("publicapi.published", api=stored.name, id=stored.id, by=account.id)
        await self._changed()
        return pb.PublishResponse(api=stored.to_proto(with_upstream=True))

    async def _upsert(self, session: AsyncSession, draft: ApiRecord) -> ApiRecord:
        existing = await records.find(session, name=draft.name, lock=True)
        if existing is None:
            stored = replace(draft, id=str(uuid.uuid4()))
            await records.insert_new(session, stored)
            await self._publish(session, EventType.EventTypeAPIEnable, stored.name)
        else:
            stored = replace(draft, id=existing.id, created=existing.created)
            await records.save(session, stored)
            await self._publish(session, EventType.EventTypeAPIUpdate, stored.name)
        return stored

    async def update(self, request: pb.UpdateRequest, ctx: CallContext) -> pb.UpdateResponse:
        verify_admin(ctx)
        if not request.api.id:
            raise BadRequest(ctx.endpoint, "Missing API ID")
        for _ in range(_ATTEMPTS):
            current = await self._find(api_id=request.api.id)
            if current is None:
                raise NotFound(ctx.endpoint, "API not found with this ID")
            draft = await self._finisher.finish(
                ctx.endpoint, apply_update(ctx.endpoint, current, request.api)
            )
            if draft.same_content(current):
                return pb.UpdateResponse(api=current.to_proto(with_upstream=True))
            stored = await self._save_if_unchanged(ctx, current, draft)
            if stored is not None:
                _log.info("publicapi.updated", api=stored.name, id=stored.id)
                await self._changed()
                return pb.UpdateResponse(api=stored.to_proto(with_upstream=True))
        raise Unavailable(ctx.endpoint, "The API changed concurrently; try again")

    async def _save_if_unchanged(
        self, ctx: CallContext, current: ApiRecord, draft: ApiRecord
    ) -> ApiRecord | None:
        """Write ``draft`` if the entry is still ``current``; None when it changed."""
        stored = replace(draft, updated=self._clock())
        try:
            async with transaction(self._sessions) as session:
                locked = await records.find(session, api_id=current.id, lock=True)
                if locked is None:
                    raise NotFound(ctx.endpoint, "API not found with this ID")
                if locked != current:
                    return None
                if stored.name != current.name:
                    taken = await records.find(session, name=stored.name)
                    if taken is not None:
                        raise Conflict(ctx.endpoint, "An API with this name exists")
                await records.save(session, stored)
                if stored.name != current.name:
                    # Consumers keyed by name learn that the old name is gone.
                    await self._publish(session, EventType.EventTypeAPIDisable, current.name)
                await self._publish(session, EventType.EventTypeAPIUpdate, stored.name)
        except IntegrityError:
            raise Conflict(ctx.endpoint, "An API with this name exists") from None
        return stored

    async def get(self, request: pb.GetRequest, ctx: CallContext) -> pb.GetResponse:
        if not request.id and not request.name.strip():
            raise BadRequest(ctx.endpoint, "ID or name must be specified")
        found = await self._find(api_id=request.id, name=request.name.strip().lower())
        if found is None:
            raise NotFound(ctx.endpoint, "API not found")
        return pb.GetResponse(api=found.to_proto(with_upstream=_sees_upstream(ctx)))

    async def list(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        async with self._sessions() as session:
            found = await records.list_all(session)
        full = _sees_upstream(ctx)
        apis = [record.to_proto(with_upstream=full) for record in found]
        for api in apis:
            if request.omit_documents:
                api.ClearField("open_api_json")
                api.ClearField("examples_json")
                api.ClearField("postman_json")
            if request.omit_descriptors:
                api.ClearField("descriptors")
        return pb.ListResponse(apis=apis)

    async def remove(self, request: pb.RemoveRequest, ctx: CallContext) -> pb.RemoveResponse:
        verify_admin(ctx)
        if not request.id and not request.name.strip():
            raise BadRequest(ctx.endpoint, "ID or name must be specified")
        name = request.name.strip().lower()
        if not storable(request.id) or not storable(name):
            raise NotFound(ctx.endpoint, "API not found")
        async with transaction(self._sessions) as session:
            found = await records.find(session, api_id=request.id, name=name, lock=True)
            if found is None:
                raise NotFound(ctx.endpoint, "API not found")
            await records.remove(session, found.id)
            await self._publish(session, EventType.EventTypeAPIDisable, found.name)
        _log.info("publicapi.removed", api=found.name, id=found.id)
        await self._changed()
        return pb.RemoveResponse()

    async def _find(self, *, api_id: str = "", name: str = "") -> ApiRecord | None:
        """The entry with ``api_id`` (when given) or ``name``; None for text no entry can
        hold."""
        if not storable(api_id) or not storable(name):
            return None
        async with self._sessions() as session:
            return await records.find(session, api_id=api_id, name=name)

    async def _publish(self, session: AsyncSession, kind: EventType.ValueType, name: str) -> None:
        await self._publisher.publish(TOPIC, _event(kind, name), session=session)

    async def _changed(self) -> None:
        """Tell catalog views to reload (after the change committed)."""
        try:
            await self._counters.incr(VERSION_KEY)
        except Unavailable:
            _log.warning("publicapi.version_not_raised", key=VERSION_KEY)
