"""``POST /stripe/webhook``: Stripe's events, forwarded untouched to the stripe service.

Stripe signs the exact bytes it sends, so the body is not parsed or re-encoded here: the
raw body and the ``Stripe-Signature`` header go to ``Stripe.Webhook`` with the gateway's
own service account, and the signing secrets stay in the stripe service. Its answer is the
webhook's: 200 when handled (or handled before), 400 for a bad signature, and any other
error non-2xx, so Stripe delivers the event again later.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.gateway.payload import read_body
from m3o.services.stripe.proto import stripe_pb2 as pb
from m3o.services.stripe.proto.client import StripeService

__all__ = ["PATH", "stripe_webhook_route"]

PATH = "/stripe/webhook"
_ERROR_ID = "stripe.webhook"


def stripe_webhook_route(
    stripe: StripeService, *, max_body_bytes: int, timeout: float | None
) -> Route:
    """The route, calling ``stripe`` (a client with the gateway's credentials)."""

    async def webhook(request: Request) -> Response:
        payload = await read_body(request, max_body_bytes, _ERROR_ID)
        signature = request.headers.get("stripe-signature", "")
        await stripe.webhook(
            pb.WebhookRequest(payload=payload, signature=signature), timeout=timeout
        )
        return JSONResponse({"received": True})

    return Route(PATH, webhook, methods=["POST"])
