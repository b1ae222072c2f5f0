"""The service definition: its parts and config, and a webhook from the HTTP front to the
event bus (the transactional outbox) through the served handler."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.support import build_app, client_for
from m3o.events import stripe as stripe_events
from m3o.gateway.stripe_webhook import stripe_webhook_route
from m3o.runtime.config import build_config
from m3o.runtime.events import Delivery
from m3o.runtime.events.sqlite import sql_event_bus
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.stripe.proto import stripe_pb2 as pb
from m3o.services.stripe.proto.client import SPEC, StripeClient
from m3o.services.stripe.service import definition
from m3o.services.stripe.settings import settings_from
from m3o.services.stripe.tables import metadata
from services.stripe.support import ANN, GATEWAY, TEST_SECRET, customer
from support.services import EveryTokenIs, dependencies, serve
from support.stripe_fake import StripeFake, event_payload, sign_webhook


def _document(fake: StripeFake) -> dict[str, object]:
    return {
        "stripe": {
            "api_key": "sk_live_unused",
            "test_mode": True,
            "test_api_key": fake.api_key,
            "signing_secret": "whsec_live",
            "test_signing_secret": TEST_SECRET,
            "api_base": fake.base_url,
            "min_amount": 500,
        }
    }


def test_settings_take_the_test_key_in_test_mode_and_both_secrets(
    stripe_fake: StripeFake,
) -> None:
    settings = settings_from(build_config(_document(stripe_fake), {}))

    assert settings.api_key == stripe_fake.api_key
    assert settings.signing_secrets == ("whsec_live", TEST_SECRET)
    assert settings.min_amount == 500
    assert settings.webhook_tolerance.total_seconds() == 300


async def test_a_webhook_from_the_front_reaches_the_bus_once(
    engine: AsyncEngine, sessions: SessionFactory, stripe_fake: StripeFake
) -> None:
    assert definition.name == "stripe"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    bus = sql_event_bus(engine, poll_interval=0.05)
    deps = dependencies("stripe", engine, sessions, _document(stripe_fake), publisher=bus.publisher)
    parts = await definition.build(deps)
    assert [c.topic for c in parts.consumers] == ["customers"]
    [handler] = parts.handlers
    as_ann = StripeClient(
        serve(SPEC, handler.implementation, authenticator=EveryTokenIs(customer(ANN))),
        StaticToken("ann"),
    )
    as_gateway = StripeClient(
        serve(SPEC, handler.implementation, authenticator=EveryTokenIs(GATEWAY)),
        StaticToken("gateway"),
    )
    app, _ = build_app(
        extra_routes=[stripe_webhook_route(as_gateway, max_body_bytes=1 << 20, timeout=10.0)]
    )
    seen: list[stripe_events.Event] = []

    async def record(delivery: Delivery) -> None:
        seen.append(delivery.decode(stripe_events.Event))

    bus.subscribe(stripe_events.TOPIC, "test-recorder", record)
    await bus.start()
    try:
        await as_ann.setup_card(pb.SetupCardRequest())
        [stripe_customer] = [
            c["data"]["object"]["id"] for c in stripe_fake.events_of("customer.created")
        ]
        client = stripe_fake.client()
        card = stripe_fake.add_card()
        client.v1.payment_methods.attach(card, {"customer": stripe_customer})
        answer = await as_ann.charge_card(pb.ChargeCardRequest(id=card, amount=700))
        assert answer.status == "succeeded"
        payload = event_payload(stripe_fake.events_of("charge.succeeded")[-1])

        async with client_for(app) as http:
            refused = await _post(http, payload + b" ", sign_webhook(payload, TEST_SECRET))
            answers = [
                await _post(http, payload, sign_webhook(payload, TEST_SECRET)) for _ in range(3)
            ]
        await bus.wait_idle(timeout=20)
    finally:
        await bus.stop()
        for stop in parts.on_stop:
            await stop()

    assert refused.status_code == 400
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [(e.charge_succeeded.customer_id, e.charge_succeeded.amount) for e in seen] == [
        (ANN, 700)
    ]


async def _post(http: httpx.AsyncClient, payload: bytes, signature: str) -> httpx.Response:
    return await http.post(
        "/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
