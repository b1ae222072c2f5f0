"""The card calls: passed to stripe in the caller's own name, answers translated field for
field, stripe's refusals kept under billing's id, and who may call what."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, Internal, NotFound, Unauthorized
from m3o.services.billing.payments import Payments
from m3o.services.billing.proto import billing_pb2 as pb
from m3o.services.stripe.proto import stripe_pb2 as stripe_pb
from m3o.services.stripe.proto.fakes import FakeStripeClient
from services.billing.support import ADMIN, ANN, BOB, SERVICE, call

Case = tuple[str, Message, str, Message, Message]
"""Billing's method, its request, the fake's method, stripe's answer, billing's answer."""

PAYMENT = {
    "id": "ch_1",
    "amount": 2000,
    "currency": "usd",
    "date": 1700000000,
    "receipt_url": "https://pay.example/r/1",
    "description": "M3O credit",
    "status": "succeeded",
}
CASES: dict[str, Case] = {
    "CreateCheckoutSession": (
        "create_checkout_session",
        pb.CreateCheckoutSessionRequest(amount=2000, save_card=True),
        "create_checkout_session",
        stripe_pb.CreateCheckoutSessionResponse(id="cs_1", url="https://pay.example/cs_1"),
        pb.CreateCheckoutSessionResponse(id="cs_1", url="https://pay.example/cs_1"),
    ),
    "SetupCard": (
        "setup_card",
        pb.SetupCardRequest(),
        "setup_card",
        stripe_pb.SetupCardResponse(client_secret="seti_secret"),
        pb.SetupCardResponse(client_secret="seti_secret"),
    ),
    "ListCards": (
        "list_cards",
        pb.ListCardsRequest(),
        "list_cards",
        stripe_pb.ListCardsResponse(
            cards=[stripe_pb.Card(id="pm_1", last_four="4242", expires="04/2030")]
        ),
        pb.ListCardsResponse(cards=[pb.Card(id="pm_1", last_four="4242", expires="04/2030")]),
    ),
    "ChargeCard": (
        "charge_card",
        pb.ChargeCardRequest(id="pm_1", amount=2000, idempotency_key="k1"),
        "charge_card",
        stripe_pb.ChargeCardResponse(
            client_secret="pi_s", status="requires_action", payment_id="pi_1"
        ),
        pb.ChargeCardResponse(client_secret="pi_s", status="requires_action", payment_id="pi_1"),
    ),
    "DeleteCard": (
        "delete_card",
        pb.DeleteCardRequest(id="pm_1"),
        "delete_card",
        stripe_pb.DeleteCardResponse(),
        pb.DeleteCardResponse(),
    ),
    "ListPayments": (
        "list_payments",
        pb.ListPaymentsRequest(),
        "list_payments",
        stripe_pb.ListPaymentsResponse(payments=[stripe_pb.Payment(**PAYMENT)]),
        pb.ListPaymentsResponse(payments=[pb.Payment(**PAYMENT)]),
    ),
    "GetPayment": (
        "get_payment",
        pb.GetPaymentRequest(id="ch_1"),
        "get_payment",
        stripe_pb.GetPaymentResponse(payment=stripe_pb.Payment(**PAYMENT)),
        pb.GetPaymentResponse(payment=pb.Payment(**PAYMENT)),
    ),
}


def method_of(payments: Payments, name: str) -> Callable[..., Awaitable[Message]]:
    method: Callable[..., Awaitable[Message]] = getattr(payments, CASES[name][0])
    return method


def fake_of(stripe: FakeStripeClient, name: str) -> Any:
    return getattr(stripe, CASES[name][2])


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("account", [ANN, BOB], ids=["customer", "other customer"])
async def test_a_customers_call_goes_to_stripe_in_their_name_and_answers_the_same_fields(
    name: str, account: Account
) -> None:
    stripe = FakeStripeClient()
    _, request, _, answer, expected = CASES[name]
    fake_of(stripe, name).returns(answer)

    got = await method_of(Payments(stripe=stripe), name)(request, call(name, account))

    assert got == expected
    assert MessageToDict(got, preserving_proto_field_name=True) == MessageToDict(
        answer, preserving_proto_field_name=True
    )
    [sent] = fake_of(stripe, name).recorded
    assert sent.metadata == {"authorization": f"Bearer {account.id}-token"}
    assert sent.request.SerializeToString() == request.SerializeToString()


async def test_an_admin_reads_any_payment_in_their_own_name() -> None:
    stripe = FakeStripeClient()
    stripe.get_payment.returns(stripe_pb.GetPaymentResponse(payment=stripe_pb.Payment(id="ch_1")))
    got = await Payments(stripe=stripe).get_payment(
        pb.GetPaymentRequest(id="ch_1"), call("GetPayment", ADMIN)
    )
    assert got.payment.id == "ch_1"
    assert stripe.get_payment.recorded[0].metadata == {"authorization": "Bearer admin-1-token"}


@pytest.mark.parametrize("name", [n for n in CASES if n != "GetPayment"])
async def test_an_admin_has_no_cards_or_payments_of_their_own(name: str) -> None:
    stripe = FakeStripeClient()
    with pytest.raises(Forbidden):
        await method_of(Payments(stripe=stripe), name)(CASES[name][1], call(name, ADMIN))
    assert fake_of(stripe, name).call_count == 0


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize(
    ("account", "error"),
    [(SERVICE, Forbidden), (None, Unauthorized)],
    ids=["service", "anonymous"],
)
async def test_services_and_anonymous_callers_are_refused(
    name: str, account: Account | None, error: type[Exception]
) -> None:
    stripe = FakeStripeClient()
    with pytest.raises(error):
        await method_of(Payments(stripe=stripe), name)(CASES[name][1], call(name, account))
    assert fake_of(stripe, name).call_count == 0


@pytest.mark.parametrize(
    "refusal",
    [
        Forbidden("stripe.chargecard", "Card does not belong to user"),
        BadRequest("stripe.chargecard", "Amount must be at least 1000"),
        NotFound("stripe.chargecard", "Card not found"),
    ],
)
async def test_stripes_refusal_reaches_the_caller_under_billings_id(refusal: Exception) -> None:
    stripe = FakeStripeClient()
    stripe.charge_card.raises(refusal)
    with pytest.raises(type(refusal)) as caught:
        await Payments(stripe=stripe).charge_card(
            pb.ChargeCardRequest(id="pm_bob", amount=2000), call("ChargeCard", ANN)
        )
    assert caught.value.id == "billing.chargecard"
    assert caught.value.detail == refusal.detail  # type: ignore[attr-defined]


async def test_another_stripe_failure_is_internal() -> None:
    stripe = FakeStripeClient()
    stripe.list_cards.raises(Internal("stripe.listcards", "stripe key invalid"))
    with pytest.raises(Internal) as caught:
        await Payments(stripe=stripe).list_cards(pb.ListCardsRequest(), call("ListCards", ANN))
    assert (caught.value.id, caught.value.detail) == ("billing.listcards", "Internal server error")


@pytest.mark.parametrize("name", ["ChargeCard", "DeleteCard", "GetPayment"])
async def test_a_call_naming_nothing_is_bad_request(name: str) -> None:
    stripe = FakeStripeClient()
    request = type(CASES[name][1])()
    with pytest.raises(BadRequest):
        await method_of(Payments(stripe=stripe), name)(request, call(name, ANN))
    assert fake_of(stripe, name).call_count == 0
