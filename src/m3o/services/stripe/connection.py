"""The service's connection to Stripe: the official library, imported and set up on first
use (importing it takes a second or two, which the platform's start-up does not pay), and
the one place where the library's errors become the runtime's error kinds.

Every request has a deadline (:data:`~m3o.services.stripe.settings.REQUEST_TIMEOUT`) and is
retried a few times; every write carries an idempotency key, so a retry never does twice.
The HTTP client is aiohttp's (the library's default httpx client warns of a deprecation).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from m3o.runtime.blocking import run_blocking
from m3o.runtime.errors import BadRequest, Internal, NotFound, Unavailable
from m3o.runtime.logging import get_logger
from m3o.services.stripe.settings import NETWORK_RETRIES, REQUEST_TIMEOUT, StripeSettings

if TYPE_CHECKING:
    from stripe import HTTPClient, StripeClient

__all__ = ["NOT_CONFIGURED", "PROVIDER_UNREACHABLE", "StripeConnection"]

NOT_CONFIGURED = "Payments are not configured"
"""Unavailable detail of every call while the operator has set no Stripe key."""
PROVIDER_UNREACHABLE = "Payment provider unavailable, please try again"

_log = get_logger(__name__)

T = TypeVar("T")


class StripeConnection:
    """Opens the Stripe client on first use; :meth:`close` on shutdown."""

    def __init__(self, settings: StripeSettings) -> None:
        self._settings = settings
        self._module: ModuleType | None = None
        self._client: StripeClient | None = None
        self._http: HTTPClient | None = None
        self._lock = asyncio.Lock()

    async def module(self) -> ModuleType:
        """The ``stripe`` module, imported on a worker thread the first time."""
        if self._module is None:
            self._module = await run_blocking(importlib.import_module, "stripe")
        return self._module

    async def client(self) -> StripeClient:
        async with self._lock:
            if self._client is None:
                stripe = await self.module()
                base = {"api": self._settings.api_base} if self._settings.api_base else None
                self._http = stripe.AIOHTTPClient(timeout=REQUEST_TIMEOUT)
                self._client = stripe.StripeClient(
                    self._settings.api_key,
                    base_addresses=base,
                    max_network_retries=NETWORK_RETRIES,
                    http_client=self._http,
                )
            return self._client

    async def close(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close_async()  # type: ignore[no-untyped-call]

    async def call(
        self,
        endpoint: str,
        request: Callable[[StripeClient], Awaitable[T]],
        *,
        missing: str = "Not found",
    ) -> T:
        """``request(client)``, its failures as error kinds: a declined card is the caller's
        BadRequest (Stripe's message for them), an unknown object NotFound ``missing``; no
        Stripe key configured, or Stripe not reachable (after the library's retries):
        Unavailable; anything else logged and Internal."""
        if not self._settings.api_key:
            raise Unavailable(endpoint, NOT_CONFIGURED)
        stripe = await self.module()
        client = await self.client()
        try:
            return await request(client)
        except stripe.CardError as exc:
            raise BadRequest(endpoint, exc.user_message or "Card declined") from exc
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                raise NotFound(endpoint, missing) from exc
            _log.error("stripe.request_refused", endpoint=endpoint, error=str(exc), code=exc.code)
            raise Internal(endpoint, "Payment provider error") from exc
        except stripe.APIConnectionError as exc:
            _log.warning("stripe.unreachable", endpoint=endpoint, error=str(exc))
            raise Unavailable(endpoint, PROVIDER_UNREACHABLE) from exc
        except stripe.StripeError as exc:
            _log.error("stripe.request_failed", endpoint=endpoint, error=str(exc))
            raise Internal(endpoint, "Payment provider error") from exc
