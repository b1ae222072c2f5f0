"""The service definition: built from config, it serves both RPCs through the dispatcher
and consumes customers events into Mailchimp."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events import customers as customers_events
from m3o.runtime.events import Delivery
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.mailchimp.proto import mailchimp_pb2 as pb
from m3o.services.mailchimp.proto.client import SPEC, MailchimpClient
from m3o.services.mailchimp.service import definition
from services.mailchimp.support import ADMIN, API_KEY, LIST_ID, MailchimpFake
from support.services import EveryTokenIs, dependencies, serve


async def test_built_from_config_it_serves_and_consumes(
    engine: AsyncEngine, sessions: SessionFactory, mailchimp: tuple[MailchimpFake, str]
) -> None:
    fake, url = mailchimp
    document = {
        "mailchimp": {
            "enabled": True,
            "api_key": API_KEY,
            "main_list_id": LIST_ID,
            "api_url": url,
            "block_list": ["blocked@example.com"],
        }
    }
    assert definition.name == "mailchimp"
    assert definition.metadata is None
    parts = await definition.build(dependencies("mailchimp", engine, sessions, document))
    try:
        [consumer] = parts.consumers
        [handler] = parts.handlers
        client = MailchimpClient(
            serve(SPEC, handler.implementation, authenticator=EveryTokenIs(ADMIN)),
            StaticToken("admin"),
        )
        await client.add_customer(pb.AddCustomerRequest(email="ann@example.com"))
        await client.delete_customer(pb.DeleteCustomerRequest(email="Blocked@example.com"))
        event = customers_events.Event(
            type=customers_events.EventType.EventTypeDeleted,
            customer=customers_events.events_pb2.Customer(id="ann", email="ann@example.com"),
        )
        await consumer.handle(
            Delivery(
                "evt", "customers", "EventTypeDeleted", datetime.now(UTC), event.SerializeToString()
            )
        )
    finally:
        for stop in parts.on_stop:
            await stop()

    assert consumer.topic == customers_events.TOPIC
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.auth[1]) for r in fake.received] == [
        ("PUT", fake.received[0].path.rsplit("/", 1)[-1], API_KEY),
        ("POST", "delete-permanent", API_KEY),
    ]
