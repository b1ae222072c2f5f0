"""The customer's money: the balance with its ledger and top-ups, and the billing page with
saved cards, card charges, the subscription tier and past payments. Signed-in people only.

- ``GET /console/balance``: the balance (``Balance.Current``) and the visible ledger
  (``Balance.ListAdjustments``, oldest first as the service pages it, ``?page=N``), and the
  top-up forms. ``?paid=1`` (where Stripe's ``success_url`` should lead) says the payment is
  on its way: the balance is credited by Stripe's webhook, not by the return.
- ``POST /console/balance/topup``: an amount in dollars, checked here (a positive number of
  cents, at most ``MAX_AMOUNT``), then ``Billing.CreateCheckoutSession``; 303 to Stripe
  Checkout. The service's own minimum comes back as its error, shown on the form.
- ``GET /console/billing``: saved cards (``Billing.ListCards``), a card charge form, the tier
  (``Billing.ReadAccount``, ``Billing.ListTiers``) and past payments
  (``Billing.ListPayments``).
- ``POST /console/billing/cards/save``: ``Billing.CreateCheckoutSession`` with ``save_card``;
  303 to Stripe Checkout. ``POST /console/billing/cards/remove``: ``Billing.DeleteCard``
  (stripe refuses a card that is not the caller's).
- ``POST /console/billing/charge``: ``Billing.ChargeCard`` with the idempotency key made when
  the form was rendered (a hidden field), so submitting the same form twice charges once.
- ``POST /console/billing/tier``: ``Billing.SubscribeTier``.

When payments are not configured (``settings.payments`` false) the balance, ledger and tier
still show; the payment parts say so instead of offering forms, and nothing that would reach
Stripe is called for the pages.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from m3o.console.amounts import UNITS_PER_CENT, AmountError, parse_dollars
from m3o.console.web import BASE, Console, Session
from m3o.runtime.errors import BadRequest, Internal, M3OError, Unauthorized, Unavailable
from m3o.runtime.money import dollars
from m3o.services.balance.proto import balance_pb2
from m3o.services.billing.proto import billing_pb2

__all__ = ["LEDGER_PAGE", "routes"]

LEDGER_PAGE = 50
"""Ledger entries a page."""
PRESETS = (10, 20, 50)
"""Top-up amounts offered as one-click buttons, in dollars (the default minimum is $10)."""
_MINIMUM = re.compile(r"Amount must be at least (\d+)$")
_ERROR_ID = "console.billing"


@dataclass(frozen=True, slots=True)
class _Problem:
    """An error to show beside one form of a page (``form`` names it), with its status."""

    form: str
    message: str
    status: int


def cents_of(value: object) -> int:
    """A dollar amount typed by a person ("20", "12.50", "$5", "1,000") in cents;
    BadRequest with a readable message otherwise."""
    try:
        return parse_dollars(value, decimals=2) // UNITS_PER_CENT
    except AmountError as exc:
        raise BadRequest(_ERROR_ID, str(exc)) from None


def _problem(form: str, exc: M3OError, message: str = "") -> _Problem:
    """``exc`` to show beside ``form`` (the service's minimum amount, in cents, said in
    dollars); a refused session is raised again, to go and sign in."""
    if isinstance(exc, Unauthorized):
        raise exc
    minimum = _MINIMUM.match(exc.detail)
    if minimum and not message:
        message = f"The amount must be at least {dollars(int(minimum.group(1)) * UNITS_PER_CENT)}."
    return _Problem(form, message or exc.detail, exc.code)


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise BadRequest(_ERROR_ID, "The page must be a whole number from 1.")
    return int(raw)


def _payment_row(payment: billing_pb2.Payment) -> dict[str, Any]:
    receipt = payment.receipt_url if payment.receipt_url.startswith("https://") else ""
    return {
        "date": payment.date,
        "description": payment.description or "Payment",
        "status": payment.status,
        "currency": payment.currency.lower(),
        "units": payment.amount * UNITS_PER_CENT,
        "minor": f"{payment.amount / 100:.2f}",
        "receipt": receipt,
    }


def routes(console: Console) -> list[BaseRoute]:
    """The balance and billing pages."""
    pages = _Pages(console)
    return [
        console.route("/balance", pages.show_balance),
        console.route("/balance/topup", pages.top_up, methods=["POST"]),
        console.route("/billing", pages.show_billing),
        console.route("/billing/cards/save", pages.save_card, methods=["POST"]),
        console.route("/billing/cards/remove", pages.remove_card, methods=["POST"]),
        console.route("/billing/charge", pages.charge_card, methods=["POST"]),
        console.route("/billing/tier", pages.change_tier, methods=["POST"]),
    ]


class _Pages:
    """The handlers, over the console's balance and billing clients."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.balance = console.clients.balance
        self.billing = console.clients.billing

    # The balance page.

    async def balance_page(
        self,
        request: Request,
        session: Session,
        *,
        problem: _Problem | None = None,
        amount: str = "",
    ) -> Response:
        page = _page_number(request)
        metadata = self.console.metadata(request, session)
        current = await self.balance.current(balance_pb2.CurrentRequest(), metadata=metadata)
        listed = await self.balance.list_adjustments(
            balance_pb2.ListAdjustmentsRequest(
                limit=LEDGER_PAGE + 1, offset=(page - 1) * LEDGER_PAGE
            ),
            metadata=metadata,
        )
        entries = list(listed.adjustments)
        ledger = [
            {
                "created": entry.created,
                "reference": entry.reference,
                "delta": entry.delta,
                "charge": entry.meta.get("charge_id", ""),
                "receipt": entry.meta.get("receipt_url", "")
                if entry.meta.get("receipt_url", "").startswith("https://")
                else "",
            }
            for entry in entries[:LEDGER_PAGE]
        ]
        return self.console.render(
            request,
            "billing/balance.html",
            {
                "title": "Balance",
                "balance": current.current_balance,
                "ledger": ledger,
                "page": page,
                "more": len(entries) > LEDGER_PAGE,
                "presets": PRESETS,
                "amount": amount,
                "paid": request.query_params.get("paid") == "1",
                "error": problem.message if problem else "",
            },
            status=problem.status if problem else 200,
        )

    async def show_balance(self, request: Request) -> Response:
        return await self.balance_page(request, await self.console.require(request))

    async def top_up(self, request: Request) -> Response:
        session = await self.console.require(request)
        form = await self.console.form(request)
        amount = str(form.get("amount", ""))
        try:
            cents = cents_of(amount)
            checkout = await self.billing.create_checkout_session(
                billing_pb2.CreateCheckoutSessionRequest(amount=cents),
                metadata=self.console.metadata(request, session),
            )
        except M3OError as exc:
            problem = _problem("topup", exc)
            return await self.balance_page(request, session, problem=problem, amount=amount)
        return _to_checkout(checkout.url)

    # The billing page.

    async def billing_page(
        self,
        request: Request,
        session: Session,
        *,
        problem: _Problem | None = None,
        charge: dict[str, str] | None = None,
    ) -> Response:
        metadata = self.console.metadata(request, session)
        account = await self.billing.read_account(
            billing_pb2.ReadAccountRequest(), metadata=metadata
        )
        tiers = await self.billing.list_tiers(billing_pb2.ListTiersRequest(), metadata=metadata)
        subscriptions = account.billing_account.subscriptions
        tier = subscriptions[0].id if subscriptions else "free"
        cards: list[billing_pb2.Card] = []
        payments: list[dict[str, Any]] = []
        if self.console.settings.payments:
            cards = list(
                (
                    await self.billing.list_cards(billing_pb2.ListCardsRequest(), metadata=metadata)
                ).cards
            )
            listed = await self.billing.list_payments(
                billing_pb2.ListPaymentsRequest(), metadata=metadata
            )
            payments = [_payment_row(payment) for payment in listed.payments]
        charge = {"card": "", "amount": "", "key": "", **(charge or {})}
        if not charge.get("key"):
            charge["key"] = secrets.token_urlsafe(24)
        return self.console.render(
            request,
            "billing/billing.html",
            {
                "title": "Billing",
                "tier": tier,
                "tier_name": next((t.name for t in tiers.tiers if t.id == tier), tier),
                "tiers": list(tiers.tiers),
                "cards": cards,
                "payments": payments,
                "charge": charge,
                "problem": problem,
            },
            status=problem.status if problem else 200,
        )

    async def show_billing(self, request: Request) -> Response:
        return await self.billing_page(request, await self.console.require(request))

    async def save_card(self, request: Request) -> Response:
        session = await self.console.require(request)
        await self.console.form(request)
        try:
            checkout = await self.billing.create_checkout_session(
                billing_pb2.CreateCheckoutSessionRequest(save_card=True),
                metadata=self.console.metadata(request, session),
            )
        except M3OError as exc:
            return await self.billing_page(request, session, problem=_problem("cards", exc))
        return _to_checkout(checkout.url)

    async def remove_card(self, request: Request) -> Response:
        session = await self.console.require(request)
        form = await self.console.form(request)
        card = str(form.get("card", "")).strip()
        try:
            if not card:
                raise BadRequest(_ERROR_ID, "Choose a card to remove.")
            await self.billing.delete_card(
                billing_pb2.DeleteCardRequest(id=card),
                metadata=self.console.metadata(request, session),
            )
        except M3OError as exc:
            return await self.billing_page(request, session, problem=_problem("cards", exc))
        return self.console.redirect(request, BASE + "/billing", flash="The card was removed.")

    async def charge_card(self, request: Request) -> Response:
        session = await self.console.require(request)
        form = await self.console.form(request)
        card = str(form.get("card", "")).strip()
        amount = str(form.get("amount", ""))
        key = str(form.get("idempotency_key", "")).strip()
        try:
            if not card:
                raise BadRequest(_ERROR_ID, "Choose the card to charge.")
            if not key or len(key) > 100:
                raise BadRequest(_ERROR_ID, "This form has expired: reload the page and try again.")
            cents = cents_of(amount)
            charged = await self.billing.charge_card(
                billing_pb2.ChargeCardRequest(id=card, amount=cents, idempotency_key=key),
                metadata=self.console.metadata(request, session),
            )
        except M3OError as exc:
            # The outcome is unknown only when the service could not answer: the same key
            # then makes a retry safe. Otherwise nothing was charged and a new key lets the
            # person change the card or the amount.
            kept = key if isinstance(exc, Unavailable) or exc.code >= 500 else ""
            problem = _problem("charge", exc)
            return await self.billing_page(
                request,
                session,
                problem=problem,
                charge={"card": card, "amount": amount, "key": kept},
            )
        shown = dollars(cents * UNITS_PER_CENT)
        if charged.status == "requires_action":
            problem = _Problem(
                "charge",
                f"Your bank asks you to confirm the payment of {shown} (3-D Secure), which "
                "this page cannot do: nothing has been charged. Top up through Stripe Checkout "
                "on the Balance page instead, or use another card.",
                200,
            )
            return await self.billing_page(request, session, problem=problem)
        if charged.status == "succeeded":
            message = f"The card was charged {shown}: your balance is credited in a moment."
        else:
            message = (
                f"The payment of {shown} is {charged.status or 'processing'}: "
                "your balance is credited once it succeeds."
            )
        return self.console.redirect(request, BASE + "/billing", flash=message)

    async def change_tier(self, request: Request) -> Response:
        session = await self.console.require(request)
        form = await self.console.form(request)
        tier = str(form.get("tier", "")).strip()
        card = str(form.get("card", "")).strip()
        try:
            if not tier:
                raise BadRequest(_ERROR_ID, "Choose a tier.")
            await self.billing.subscribe_tier(
                billing_pb2.SubscribeTierRequest(id=tier, card_id=card),
                metadata=self.console.metadata(request, session),
            )
        except M3OError as exc:
            message = (
                "Choose the card that pays for this tier."
                if exc.detail == "Missing card_id"
                else ""
            )
            return await self.billing_page(request, session, problem=_problem("tier", exc, message))
        return self.console.redirect(
            request, BASE + "/billing", flash="Your subscription was changed."
        )


def _to_checkout(url: str) -> Response:
    """303 to Stripe's Checkout page."""
    if not url.startswith("https://"):
        raise Internal(_ERROR_ID, "The payment page could not be opened, please try again.")
    return RedirectResponse(url, status_code=303)
