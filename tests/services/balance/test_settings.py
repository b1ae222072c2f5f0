"""Settings from config, and what a payment credits."""

from __future__ import annotations

from datetime import timedelta

from m3o.runtime.config import build_config
from m3o.services.balance.settings import BalanceSettings, settings_from


def test_settings_come_from_the_balance_and_stripe_sections() -> None:
    config = build_config(
        {
            "balance": {"margin": 15, "exchange_rates": {"EUR": 10_800}, "flush_interval": "30s"},
            "stripe": {"currency": "GBP"},
        },
        {},
    )

    settings = settings_from(config)

    assert settings == BalanceSettings(
        margin=15,
        currency="gbp",
        exchange_rates={"eur": 10_800},
        flush_interval=timedelta(seconds=30),
    )


def test_defaults_credit_usd_without_margin_every_minute() -> None:
    settings = settings_from(build_config({}, {}))

    assert (settings.margin, settings.currency, settings.flush_interval) == (
        0,
        "usd",
        timedelta(minutes=1),
    )
    assert settings.credit_for("usd", 1000, subscription=True) == 10_000_000


def test_margin_rounds_in_the_customers_favour() -> None:
    settings = BalanceSettings(margin=33)

    assert settings.credit_for("usd", 1, subscription=True) == 10_000 - 3_300
    assert settings.credit_for("usd", 1, subscription=False) == 10_000
    assert BalanceSettings(margin=1).credit_for("eur", 1, subscription=False) is None


def test_a_zero_rate_counts_as_unknown() -> None:
    settings = BalanceSettings(exchange_rates={"eur": 0})

    assert settings.credit_for("eur", 100, subscription=False) is None
