"""The service on a real event bus: thousands of request events reach Mixpanel in a few
import calls, each once, and a batch Mixpanel failed is sent again with the same
``$insert_id`` values when the bus redelivers its events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events import customers as customers_events
from m3o.events import requests as requests_events
from m3o.runtime.events import Publisher
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.events.tables import deliveries, groups
from m3o.runtime.service import BatchConsumer, Consumer, ServiceParts
from m3o.runtime.store import SessionFactory
from m3o.services.mixpanel.service import definition
from m3o.services.mixpanel.tables import metadata
from services.mixpanel.support import PROJECT, SECRET, USER, MixpanelFake
from support.services import dependencies

REQUESTS = 3000


def _document(url: str) -> dict[str, object]:
    return {
        "mixpanel": {
            "enabled": True,
            "project": PROJECT,
            "user": USER,
            "secret": SECRET,
            "api_url": url,
        }
    }


async def _run(
    engine: AsyncEngine, parts: ServiceParts, publish: Callable[[Publisher], Awaitable[list[str]]]
) -> list[str]:
    bus = sql_event_bus(engine, poll_interval=0.05)
    for consumer in parts.consumers:
        replace(consumer, backoff_base=timedelta(milliseconds=50)).subscribe(bus, "mixpanel")
    await bus.start()
    try:
        ids = await publish(bus.publisher)
        await bus.wait_idle(timeout=60)
    finally:
        await bus.stop()
        for stop in parts.on_stop:
            await stop()
    return ids


async def test_thousands_of_request_events_go_in_a_few_import_calls(
    engine: AsyncEngine, sessions: SessionFactory, mixpanel: tuple[MixpanelFake, str]
) -> None:
    fake, url = mixpanel
    assert definition.name == "mixpanel"
    assert definition.metadata is metadata
    parts = await definition.build(dependencies("mixpanel", engine, sessions, _document(url)))
    [customers, requests] = parts.consumers
    assert isinstance(customers, Consumer) and isinstance(requests, BatchConsumer)
    assert (customers.topic, customers.concurrency) == ("customers", 2000)
    assert (requests.topic, requests.max_batch) == ("requests", 2000)
    events = [
        requests_events.Event(
            type=requests_events.EventType.EventTypeRequest,
            request=requests_events.Request(project_id=f"p{n % 7}", user_id=f"p{n % 7}"),
        )
        for n in range(REQUESTS)
    ]

    async def publish(publisher: Publisher) -> list[str]:
        return await publisher.publish_many(requests_events.TOPIC, events)

    ids = await _run(engine, parts, publish)

    assert 2 <= len(fake.received) <= 6
    assert all(len(r.events) <= 2000 for r in fake.received)
    assert all(r.auth == (USER, SECRET) for r in fake.received)
    sent = [e["properties"]["$insert_id"] for e in fake.events()]
    assert sorted(sent) == sorted(ids)
    assert {e["event"] for e in fake.events()} == {"requests_EventTypeRequest"}


async def test_a_failed_batch_is_sent_again_with_the_same_insert_ids(
    engine: AsyncEngine, sessions: SessionFactory, mixpanel: tuple[MixpanelFake, str]
) -> None:
    fake, url = mixpanel
    fake.answers = [503, 503, 503]  # every try of the first attempt
    parts = await definition.build(dependencies("mixpanel", engine, sessions, _document(url)))
    events = [
        customers_events.Event(
            type=customers_events.EventType.EventTypeLogin,
            customer=customers_events.events_pb2.Customer(id=f"c{n}", email=f"c{n}@x.test"),
        )
        for n in range(10)
    ]

    async def publish(publisher: Publisher) -> list[str]:
        return await publisher.publish_many(customers_events.TOPIC, events)

    ids = await _run(engine, parts, publish)

    batches = [sorted(e["properties"]["$insert_id"] for e in r.events) for r in fake.received]
    assert batches[:3] == [sorted(ids)] * 3
    assert sorted(i for batch in batches[3:] for i in batch) == sorted(ids)


async def test_disabled_it_consumes_nothing_and_its_groups_are_retired(
    engine: AsyncEngine, sessions: SessionFactory, mixpanel: tuple[MixpanelFake, str]
) -> None:
    fake, url = mixpanel
    enabled = await definition.build(dependencies("mixpanel", engine, sessions, _document(url)))
    earlier = sql_event_bus(engine, poll_interval=0.05)
    for consumer in enabled.consumers:
        consumer.subscribe(earlier, "mixpanel")
    await earlier.start()
    await earlier.stop()  # its groups exist, and nobody reads them from here on
    for stop in enabled.on_stop:
        await stop()
    request = requests_events.Event(type=requests_events.EventType.EventTypeRequest)
    customer = customers_events.Event(type=customers_events.EventType.EventTypeSignup)

    disabled = await definition.build(dependencies("mixpanel", engine, sessions))
    bus = sql_event_bus(engine, poll_interval=0.05)
    await bus.publisher.publish_many(requests_events.TOPIC, [request] * 5)
    await bus.publisher.publish(customers_events.TOPIC, customer)
    for retired in disabled.retired:
        retired.retire(bus, "mixpanel")
    await bus.start()
    try:
        await bus.publisher.publish_many(requests_events.TOPIC, [request] * 5)
        await bus.publisher.publish(customers_events.TOPIC, customer)
    finally:
        await bus.stop()

    assert list(disabled.consumers) == []
    async with engine.connect() as conn:
        kept = await conn.scalar(select(func.count()).select_from(deliveries))
        groups_left = await conn.scalar(select(func.count()).select_from(groups))
    assert (kept, groups_left) == (0, 0)  # nothing waits for a group nobody reads
    assert fake.received == []
