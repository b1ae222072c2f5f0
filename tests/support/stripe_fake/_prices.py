"""Prices and products in the fake Stripe.

Tests seed the prices subscriptions use (``add_price``); Checkout's ``price_data`` makes
inactive prices (and products, from ``product_data``) on the fly, as Stripe does.
"""

from __future__ import annotations

from typing import Any

from support.stripe_fake._errors import StripeError, dict_param, int_param, str_param
from support.stripe_fake._intents import IntentsApi
from support.stripe_fake._store import LIST, Obj, Route, takes

__all__ = ["PricesApi"]


class PricesApi(IntentsApi):
    """Prices and products."""

    def routes(self) -> list[Route]:
        return [
            *super().routes(),
            Route("GET /v1/prices", self.list_prices, takes(LIST + "active product type currency")),
            Route("GET /v1/prices/{id}", self.retriever("price", "price")),
            Route("GET /v1/products/{id}", self.retriever("product", "product")),
        ]

    def add_price(
        self,
        *,
        unit_amount: int,
        currency: str = "usd",
        interval: str | None = "month",
        price_id: str | None = None,
        product_name: str = "M3O",
        nickname: str | None = None,
        lookup_key: str | None = None,
    ) -> Obj:
        """A price (recurring every ``interval``, or one-time if None) of a new product."""
        product = self.base("prod", "product", name=product_name, active=True, metadata={})
        return self._price(
            product,
            unit_amount=unit_amount,
            currency=currency,
            interval=interval,
            price_id=price_id,
            nickname=nickname,
            lookup_key=lookup_key,
        )

    def _price(
        self,
        product: Obj,
        *,
        unit_amount: int,
        currency: str,
        interval: str | None,
        price_id: str | None = None,
        active: bool = True,
        nickname: str | None = None,
        lookup_key: str | None = None,
    ) -> Obj:
        recurring = None
        if interval is not None:
            recurring = {
                "interval": interval,
                "interval_count": 1,
                "usage_type": "licensed",
                "meter": None,
                "trial_period_days": None,
            }
        return self.add(
            {
                "id": price_id or self.new_id("price"),
                "object": "price",
                "active": active,
                "billing_scheme": "per_unit",
                "created": self.clock(),
                "currency": currency,
                "livemode": False,
                "lookup_key": lookup_key,
                "metadata": {},
                "nickname": nickname,
                "product": product["id"],
                "recurring": recurring,
                "type": "one_time" if recurring is None else "recurring",
                "unit_amount": unit_amount,
                "unit_amount_decimal": str(unit_amount),
            }
        )

    def inline_price(self, data: dict[str, Any], label: str) -> Obj:
        """The inactive price ``price_data`` describes, with a new product if
        ``product_data`` names one."""
        if not data:
            raise StripeError.bad_param(
                "parameter_missing", f"Missing required param: {label}.", label
            )
        currency = str_param(data, "currency", required=True)
        unit_amount = int_param(data, "unit_amount", required=True, label=f"{label}[unit_amount]")
        assert currency is not None and unit_amount is not None
        product_id = str_param(data, "product")
        if product_id is not None:
            product = self.get("product", product_id, label="product", param=f"{label}[product]")
        else:
            name = str_param(dict_param(data, "product_data"), "name")
            if name is None:
                raise StripeError.bad_param(
                    "parameter_missing",
                    f"Missing required param: {label}[product_data][name].",
                    f"{label}[product_data][name]",
                )
            product = self.base("prod", "product", name=name, active=True, metadata={})
        interval = str_param(dict_param(data, "recurring"), "interval")
        return self._price(
            product,
            unit_amount=unit_amount,
            currency=currency.lower(),
            interval=interval,
            active=False,
        )

    def list_prices(self, params: dict[str, Any]) -> Obj:
        found = [
            price
            for price in self.of_kind("price")
            if all(
                str_param(params, name) in (None, str(price[name]).lower())
                for name in ("active", "product", "type", "currency")
            )
        ]
        return self.page(found, params, "/v1/prices")
