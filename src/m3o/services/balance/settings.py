"""The balance service's settings, taken once from config sections ``balance`` and
``stripe``, and what a payment credits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from m3o.runtime.config import Config

__all__ = ["UNITS_PER_CENT", "BalanceSettings", "settings_from"]

UNITS_PER_CENT = 10_000
"""Balance units (1/10,000ths of a cent) per minor unit of the configured currency."""


@dataclass(frozen=True, slots=True)
class BalanceSettings:
    margin: int = 0
    """Percent of a subscription payment kept, not credited (top-ups: none)."""
    currency: str = "usd"
    """The currency payments are normally made in (``stripe.currency``), lower case."""
    exchange_rates: Mapping[str, int] = field(default_factory=dict)
    """Credit units per minor unit of another currency, by lower-case ISO code."""
    flush_interval: timedelta = timedelta(minutes=1)
    """How often request debits are written to the ledger."""

    def credit_for(self, currency: str, amount: int, *, subscription: bool) -> int | None:
        """Units credited for ``amount`` minor units of ``currency``; None when no rate is
        known. The margin is taken from subscription payments only, rounded in the
        customer's favour."""
        currency = currency.lower()
        rate = UNITS_PER_CENT if currency == self.currency else self.exchange_rates.get(currency)
        if not rate:
            return None
        gross = amount * rate
        if not subscription:
            return gross
        return gross - gross * self.margin // 100


def settings_from(config: Config) -> BalanceSettings:
    return BalanceSettings(
        margin=config.balance.margin,
        currency=config.stripe.currency,
        exchange_rates={k.lower(): v for k, v in config.balance.exchange_rates.items()},
        flush_interval=config.balance.flush_interval,
    )
