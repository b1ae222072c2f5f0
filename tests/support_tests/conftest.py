"""Clients of the official ``stripe`` library pointed at the fake, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import stripe

from support.stripe_fake import StripeFake


@pytest.fixture
def client(stripe_fake: StripeFake) -> Iterator[stripe.StripeClient]:
    """A blocking client (the library's default HTTP client, requests)."""
    http = stripe.RequestsClient()
    yield stripe_fake.client(http_client=http)
    http.close()  # type: ignore[no-untyped-call]


@pytest.fixture
async def async_client(stripe_fake: StripeFake) -> AsyncIterator[stripe.StripeClient]:
    """A client for the ``*_async`` methods, over aiohttp.

    Not the library's httpx client: it posts with httpx's deprecated ``data=<str>``, whose
    DeprecationWarning the suite's warnings-as-errors turns into a connection error.
    """
    http = stripe.AIOHTTPClient()
    yield stripe_fake.client(http_client=http)
    await http.close_async()  # type: ignore[no-untyped-call]


@pytest.fixture
def customer(client: stripe.StripeClient) -> stripe.Customer:
    return client.v1.customers.create({"email": "ada@example.com"})
