"""POST /stripe/webhook: the raw body and signature reach the stripe service untouched."""

from __future__ import annotations

from starlette.applications import Starlette

from gateway.support import build_app, client_for
from m3o.gateway.stripe_webhook import stripe_webhook_route
from m3o.runtime.errors import BadRequest, Unavailable
from m3o.services.stripe.proto.fakes import FakeStripeClient

BODY = b'{"id": "evt_1",  "type": "charge.succeeded"}'


def _app(stripe: FakeStripeClient, max_body_bytes: int = 1024) -> Starlette:
    route = stripe_webhook_route(stripe, max_body_bytes=max_body_bytes, timeout=5.0)
    app, _ = build_app(extra_routes=[route])
    return app


async def test_the_body_and_signature_are_forwarded_byte_for_byte() -> None:
    stripe = FakeStripeClient()
    async with client_for(_app(stripe)) as http:
        response = await http.post(
            "/stripe/webhook",
            content=BODY,
            headers={"Stripe-Signature": "t=1,v1=abc", "Content-Type": "application/json"},
        )

    assert response.status_code == 200
    [recorded] = stripe.webhook.recorded
    assert recorded.request.payload == BODY
    assert recorded.request.signature == "t=1,v1=abc"


async def test_a_refused_signature_is_400() -> None:
    stripe = FakeStripeClient()
    stripe.webhook.raises(BadRequest("stripe.webhook", "Invalid Stripe-Signature"))
    async with client_for(_app(stripe)) as http:
        response = await http.post("/stripe/webhook", content=BODY)

    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid Stripe-Signature"


async def test_a_failure_is_not_2xx_so_stripe_retries() -> None:
    stripe = FakeStripeClient()
    stripe.webhook.raises(Unavailable("stripe.webhook", "Charge of an unknown customer"))
    async with client_for(_app(stripe)) as http:
        response = await http.post("/stripe/webhook", content=BODY)

    assert response.status_code == 503


async def test_a_body_over_the_limit_is_refused_before_the_service() -> None:
    stripe = FakeStripeClient()
    async with client_for(_app(stripe, max_body_bytes=10)) as http:
        response = await http.post("/stripe/webhook", content=BODY)

    assert response.status_code == 413
    assert response.json()["status"] == "Request Entity Too Large"
    assert stripe.webhook.recorded == []
