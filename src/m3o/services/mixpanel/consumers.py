"""Events the mixpanel service consumes: ``customers`` and ``requests``, each forwarded as
a Mixpanel event in batches (see :mod:`m3o.services.mixpanel.batcher`).

An event becomes ``{"event": "<topic>_<TypeName>", "properties": {"distinct_id",
"time", "$insert_id", "data"}}``: the type name comes from the envelope, so a new event
type needs no change here; ``distinct_id`` is the customer (customers) or the project
(requests); ``time`` is the event's time in milliseconds since the epoch; ``$insert_id``
is the event id, so Mixpanel drops a redelivered event; ``data`` is the event in M3O's
JSON mapping.

The ignore list is applied once per batch: a customers event carrying an ignored email is
dropped and its customer remembered (``mixpanel_ignored_customers``; one carrying an email
not on the list forgets it), so that customers events without an email and request
events, which carry only a project, can be checked: one query for the batch's customers
and projects (an ignored customer's default project has its id), one projects lookup per
project this process has not seen before, one query for their owners, and a write only
when what is remembered changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from google.protobuf.message import Message

from m3o.events import customers as customers_events
from m3o.events import requests as requests_events
from m3o.runtime.email_address import normalise_email
from m3o.runtime.events import Delivery, read_each
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.runtime.service import BatchConsumer, Consumer
from m3o.services.mixpanel.batcher import Batcher, Pending
from m3o.services.mixpanel.importer import Importer
from m3o.services.mixpanel.owners import ProjectOwners
from m3o.services.mixpanel.records import IgnoredCustomers

__all__ = ["LINGER", "YIELD_EVERY", "Forwarder", "mixpanel_event"]

_log = get_logger(__name__)

LINGER = timedelta(milliseconds=500)
"""How long a batch waits for more events after its first one."""
YIELD_EVERY = 64
"""Request events turned into Mixpanel's form between two turns given back to the event
loop. A claimed batch holds up to ``mixpanel.batch_size`` events (2,000 by default), and
turning one into Mixpanel's form takes about 25 µs: in one go, a batch of a backlog held
every call of ``m3o serve`` (the same loop) up for 50 ms."""


def mixpanel_event(
    delivery: Delivery, data: Message, distinct_id: str, *, with_data: bool = True
) -> dict[str, Any]:
    """The Mixpanel event of ``delivery`` (whose decoded event is ``data``); without its
    ``data`` property unless ``with_data``."""
    properties: dict[str, Any] = {
        "distinct_id": distinct_id,
        "time": int(delivery.time.timestamp() * 1000),
        "$insert_id": delivery.id,
    }
    if with_data:
        properties["data"] = message_to_dict(data)
    return {
        "event": f"{delivery.topic}_{delivery.type_name or 'EventTypeUnknown'}",
        "properties": properties,
    }


class Forwarder:
    """Consumes ``customers`` and ``requests`` (groups ``mixpanel-customers`` and
    ``mixpanel-requests``) into batches for ``importer``."""

    def __init__(
        self,
        *,
        importer: Importer,
        ignored: IgnoredCustomers,
        owners: ProjectOwners,
        ignore_list: Iterable[str],
        batch_size: int,
        linger: timedelta = LINGER,
    ) -> None:
        self._ignored = ignored
        self._owners = owners
        self._ignore_list = frozenset(normalise_email(e) for e in ignore_list if e.strip())
        self._batch_size = batch_size
        self._with_data = importer.wants_data
        self._batcher = Batcher(importer.send, size=batch_size, linger=linger, prepare=self._keep)

    def consumers(self) -> list[Consumer | BatchConsumer]:
        # Customers events are few: as many handlers at once as a batch holds. Request
        # events come a claimed batch at a time.
        return [
            Consumer(customers_events.TOPIC, self.handle_customer, concurrency=self._batch_size),
            BatchConsumer(requests_events.TOPIC, self.handle_requests, max_batch=self._batch_size),
        ]

    async def close(self) -> None:
        await self._batcher.close()

    async def handle_customer(self, delivery: Delivery) -> None:
        event = delivery.decode(customers_events.Event)
        email = normalise_email(event.customer.email)
        await self._batcher.submit(
            Pending(
                mixpanel_event(delivery, event, event.customer.id, with_data=self._with_data),
                customer_id=event.customer.id,
                email_ignored=(email in self._ignore_list) if email else None,
            )
        )

    async def handle_requests(self, deliveries: Sequence[Delivery]) -> dict[str, Exception]:
        """Forward a batch of request events; returns those that cannot be read (failed
        alone)."""
        unreadable: dict[str, Exception] = {}
        pending: list[Pending] = []
        for start in range(0, len(deliveries), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            read, failed = read_each(deliveries[start : start + YIELD_EVERY], _request_event)
            unreadable.update(failed)
            for delivery, event in read:
                project_id = event.request.project_id or event.request.user_id
                made = mixpanel_event(delivery, event, project_id, with_data=self._with_data)
                pending.append(Pending(made, project_id=project_id))
        await self._batcher.submit_many(pending)
        return unreadable

    async def _keep(self, batch: Sequence[Pending]) -> Sequence[Pending]:
        """The events of ``batch`` whose customer is not ignored; what the batch's customers
        events say about their emails is recorded on the way."""
        if not self._ignore_list:
            return batch
        emails: dict[str, bool] = {}
        for p in batch:
            if p.customer_id and p.email_ignored is not None:
                emails[p.customer_id] = emails.get(p.customer_id, False) or p.email_ignored
        customers = {p.customer_id for p in batch if p.customer_id}
        projects = {p.project_id for p in batch if p.project_id}
        recorded = await self._ignored.among(customers | projects)
        newly = {c for c, ignored in emails.items() if ignored and c not in recorded}
        tracked = {c for c, ignored in emails.items() if not ignored and c in recorded}
        await self._ignored.update(ignored=newly, tracked=tracked)
        ignored = (recorded - tracked) | newly
        owners = await self._owners.owners(projects - ignored)
        by_owner = await self._ignored.among(set(owners.values()))
        kept = [p for p in batch if not _skipped(p, ignored, owners, by_owner)]
        if len(kept) < len(batch):
            _log.debug("mixpanel.ignored", events=len(batch) - len(kept))
        return kept


def _request_event(delivery: Delivery) -> requests_events.Event:
    return delivery.decode(requests_events.Event)


def _skipped(p: Pending, ignored: set[str], owners: dict[str, str], by_owner: set[str]) -> bool:
    if p.email_ignored is not None:
        return p.email_ignored
    if p.customer_id:
        return p.customer_id in ignored
    return p.project_id in ignored or owners.get(p.project_id, "") in by_owner
