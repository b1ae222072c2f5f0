"""Stripe webhooks as Stripe sends them: event payloads and their ``Stripe-Signature``.

``sign_webhook`` computes the header independently of the ``stripe`` library (which the
services use to verify it), so a test that passes proves the two agree:
``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed with the endpoint secret>``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
import stripe

__all__ = ["API_VERSION", "build_event", "event_payload", "sign_webhook"]

API_VERSION: str = stripe.api_version
"""The API version the installed ``stripe`` library speaks, stamped on every event."""


def sign_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload``.

    ``timestamp`` defaults to now; pass an old one to test the tolerance.
    """
    signed_at = int(time.time()) if timestamp is None else timestamp
    signed = f"{signed_at}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={signed_at},v1={digest}"


def build_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    event_id: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """An event of ``event_type`` about (a copy of) the API object ``obj``."""
    data: dict[str, Any] = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def event_payload(event: dict[str, Any]) -> bytes:
    """The body of the webhook request that delivers ``event``."""
    return orjson.dumps(event)
