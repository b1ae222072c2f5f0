"""The stripe service's settings, taken once from the config section ``stripe``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from m3o.runtime.config import Config

__all__ = ["NETWORK_RETRIES", "REQUEST_TIMEOUT", "StripeSettings", "settings_from"]

REQUEST_TIMEOUT = 30.0
"""Seconds one request to Stripe may take (the library's default is 80)."""
NETWORK_RETRIES = 2
"""Retries of a request that failed on the network or with a retryable status; every write
carries an idempotency key, so a retry never does anything twice."""


@dataclass(frozen=True, slots=True)
class StripeSettings:
    api_key: str = ""
    """The key the service calls Stripe with (the test key in test mode)."""
    signing_secrets: tuple[str, ...] = ()
    """Webhook signing secrets tried in turn: the live one, then the test one."""
    success_url: str = ""
    cancel_url: str = ""
    currency: str = "usd"
    """Currency of top-ups and charges, lower case."""
    min_amount: int = 1000
    """Smallest top-up or charge, in minor units."""
    api_base: str = ""
    """Stripe's API address; empty for Stripe's own."""
    webhook_tolerance: timedelta = timedelta(seconds=300)
    """Largest accepted age of a webhook signature."""


def settings_from(config: Config) -> StripeSettings:
    section = config.stripe
    live_key = section.api_key.get_secret_value()
    test_key = section.test_api_key.get_secret_value()
    secrets = (
        section.signing_secret.get_secret_value(),
        section.test_signing_secret.get_secret_value(),
    )
    return StripeSettings(
        api_key=test_key if section.test_mode else live_key,
        signing_secrets=tuple(secret for secret in secrets if secret),
        success_url=section.success_url,
        cancel_url=section.cancel_url,
        currency=section.currency,
        min_amount=section.min_amount,
        api_base=section.api_base,
        webhook_tolerance=section.webhook_tolerance,
    )
