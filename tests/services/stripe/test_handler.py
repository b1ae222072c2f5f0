"""The stripe RPCs: validation, ownership and every role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.store import SessionFactory
from m3o.services.stripe.connection import NOT_CONFIGURED, PROVIDER_UNREACHABLE
from m3o.services.stripe.proto import stripe_pb2 as pb
from services.stripe.support import (
    ADMIN,
    ANN,
    BILLING,
    BOB,
    GATEWAY,
    MIN_AMOUNT,
    World,
    call,
    customer,
    make_world,
)
from support.ports import free_port
from support.stripe_fake import StripeFake

ANONYMOUS: Account | None = None


# -- checkout and cards -----------------------------------------------------------------


async def test_checkout_below_the_minimum_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest, match="Amount must be at least 1000"):
        await world.handler.create_checkout_session(
            pb.CreateCheckoutSessionRequest(amount=999),
            call("CreateCheckoutSession", customer(ANN)),
        )
    assert world.fake.requests == []


async def test_checkout_sells_credit_to_the_callers_stripe_customer(world: World) -> None:
    answer = await world.handler.create_checkout_session(
        pb.CreateCheckoutSessionRequest(amount=2500), call("CreateCheckoutSession", customer(ANN))
    )

    session = world.fake.get(answer.id)
    assert session["mode"] == "payment"
    assert session["customer"] == await world.customers.find(ANN)
    assert session["success_url"] == "https://m3o.test/paid"
    assert session["cancel_url"] == "https://m3o.test/cancelled"
    request = world.fake.requests_to("POST", "/v1/checkout/sessions")[0]
    item = request.params["line_items"][0]
    assert item["price_data"]["product_data"]["name"] == "M3O credit"
    assert item["price_data"]["currency"] == "usd"
    assert item["price_data"]["unit_amount"] == "2500"
    assert request.idempotency_key


async def test_checkout_saving_a_card_is_setup_mode_whatever_the_amount(world: World) -> None:
    answer = await world.handler.create_checkout_session(
        pb.CreateCheckoutSessionRequest(save_card=True),
        call("CreateCheckoutSession", customer(ANN)),
    )

    assert world.fake.get(answer.id)["mode"] == "setup"


async def test_setup_card_gives_a_setup_intents_secret(world: World) -> None:
    answer = await world.handler.setup_card(pb.SetupCardRequest(), call("SetupCard", customer(ANN)))

    assert answer.client_secret.startswith("seti_")


async def test_list_cards_without_a_stripe_customer_is_empty(world: World) -> None:
    answer = await world.handler.list_cards(pb.ListCardsRequest(), call("ListCards", customer(ANN)))

    assert list(answer.cards) == []
    assert world.fake.requests == []


async def test_list_cards_shows_last_four_and_expiry(world: World) -> None:
    card = await world.card_of(ANN, last4="1881", exp_month=3, exp_year=2031)

    answer = await world.handler.list_cards(pb.ListCardsRequest(), call("ListCards", customer(ANN)))

    assert list(answer.cards) == [pb.Card(id=card, last_four="1881", expires="03/2031")]


async def test_charge_card_charges_the_callers_card(world: World) -> None:
    card = await world.card_of(ANN)

    answer = await world.handler.charge_card(
        pb.ChargeCardRequest(id=card, amount=1500, idempotency_key="k1"),
        call("ChargeCard", customer(ANN)),
    )

    assert answer.status == "succeeded"
    intent = world.fake.get(answer.payment_id)
    assert intent["amount"] == 1500
    assert intent["customer"] == await world.customers.find(ANN)
    # credited only by the webhook
    assert world.publisher.published == []


async def test_charge_card_repeated_with_its_key_charges_once(world: World) -> None:
    card = await world.card_of(ANN)
    request = pb.ChargeCardRequest(id=card, amount=1500, idempotency_key="k1")

    first = await world.handler.charge_card(request, call("ChargeCard", customer(ANN)))
    again = await world.handler.charge_card(request, call("ChargeCard", customer(ANN)))

    assert again.payment_id == first.payment_id
    assert len(world.fake.events_of("charge.succeeded")) == 1


async def test_charge_card_sends_an_idempotency_key_without_one(world: World) -> None:
    card = await world.card_of(ANN)

    await world.handler.charge_card(
        pb.ChargeCardRequest(id=card, amount=1500), call("ChargeCard", customer(ANN))
    )

    assert world.fake.requests_to("POST", "/v1/payment_intents")[0].idempotency_key


async def test_charge_card_needing_3d_secure_returns_the_client_secret(world: World) -> None:
    card = await world.card_of(ANN, outcome="requires_action")

    answer = await world.handler.charge_card(
        pb.ChargeCardRequest(id=card, amount=1500), call("ChargeCard", customer(ANN))
    )

    assert answer.status == "requires_action"
    assert answer.client_secret.startswith(answer.payment_id)


async def test_charge_card_declined_is_bad_request(world: World) -> None:
    card = await world.card_of(ANN, outcome="declines")

    with pytest.raises(BadRequest):
        await world.handler.charge_card(
            pb.ChargeCardRequest(id=card, amount=1500), call("ChargeCard", customer(ANN))
        )


async def test_charge_card_below_the_minimum_is_bad_request(world: World) -> None:
    card = await world.card_of(ANN)

    with pytest.raises(BadRequest, match=f"Amount must be at least {MIN_AMOUNT}"):
        await world.handler.charge_card(
            pb.ChargeCardRequest(id=card, amount=MIN_AMOUNT - 1), call("ChargeCard", customer(ANN))
        )


async def test_charge_card_of_someone_else_is_forbidden(world: World) -> None:
    card = await world.card_of(BOB)
    await world.customers.ensure("test", ANN)

    with pytest.raises(Forbidden, match="Card does not belong to user"):
        await world.handler.charge_card(
            pb.ChargeCardRequest(id=card, amount=1500), call("ChargeCard", customer(ANN))
        )
    assert world.fake.requests_to("POST", "/v1/payment_intents") == []


async def test_delete_card_of_someone_else_is_forbidden(world: World) -> None:
    card = await world.card_of(BOB)

    with pytest.raises(Forbidden, match="Card does not belong to user"):
        await world.handler.delete_card(
            pb.DeleteCardRequest(id=card), call("DeleteCard", customer(ANN))
        )
    assert world.fake.get(card)["customer"] is not None


async def test_delete_card_detaches_it(world: World) -> None:
    card = await world.card_of(ANN)

    await world.handler.delete_card(
        pb.DeleteCardRequest(id=card), call("DeleteCard", customer(ANN))
    )

    assert world.fake.get(card)["customer"] is None


# -- payments ----------------------------------------------------------------------------


async def _paid(world: World, customer_id: str) -> str:
    card = await world.card_of(customer_id)
    await world.handler.charge_card(
        pb.ChargeCardRequest(id=card, amount=1500), call("ChargeCard", customer(customer_id))
    )
    return str(world.fake.events_of("charge.succeeded")[-1]["data"]["object"]["id"])


async def test_list_payments_shows_the_callers_charges(world: World) -> None:
    charge = await _paid(world, ANN)
    await _paid(world, BOB)

    answer = await world.handler.list_payments(
        pb.ListPaymentsRequest(), call("ListPayments", customer(ANN))
    )

    assert [p.id for p in answer.payments] == [charge]
    assert answer.payments[0].amount == 1500
    assert answer.payments[0].status == "succeeded"


async def test_get_payment_of_someone_else_is_not_found(world: World) -> None:
    charge = await _paid(world, BOB)

    with pytest.raises(NotFound):
        await world.handler.get_payment(
            pb.GetPaymentRequest(id=charge), call("GetPayment", customer(ANN))
        )


# -- subscriptions -----------------------------------------------------------------------


async def test_subscribe_with_the_customers_card(world: World) -> None:
    card = await world.card_of(ANN)
    price = world.fake.add_price(unit_amount=2000)

    answer = await world.handler.subscribe(
        pb.SubscribeRequest(
            price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="s1"
        ),
        call("Subscribe", BILLING),
    )
    again = await world.handler.subscribe(
        pb.SubscribeRequest(
            price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="s1"
        ),
        call("Subscribe", BILLING),
    )

    assert answer.status == "active"
    assert again.subscription_id == answer.subscription_id


async def test_subscribe_with_another_customers_card_is_forbidden(world: World) -> None:
    card = await world.card_of(BOB)
    await world.customers.ensure("test", ANN)
    price = world.fake.add_price(unit_amount=2000)

    with pytest.raises(Forbidden, match="Card does not belong to user"):
        await world.handler.subscribe(
            pb.SubscribeRequest(
                price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="s1"
            ),
            call("Subscribe", BILLING),
        )


async def test_subscribe_with_a_declining_card_makes_no_subscription(world: World) -> None:
    card = await world.card_of(ANN, outcome="declines")
    price = world.fake.add_price(unit_amount=2000)

    with pytest.raises(BadRequest):
        await world.handler.subscribe(
            pb.SubscribeRequest(
                price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="s1"
            ),
            call("Subscribe", BILLING),
        )

    assert world.fake.client().v1.subscriptions.list().data == []


async def test_unsubscribe_someone_elses_subscription_is_forbidden(world: World) -> None:
    card = await world.card_of(BOB)
    await world.customers.ensure("test", ANN)
    price = world.fake.add_price(unit_amount=2000)
    made = await world.handler.subscribe(
        pb.SubscribeRequest(
            price_id=price["id"], card_id=card, customer_id=BOB, idempotency_key="s1"
        ),
        call("Subscribe", BILLING),
    )

    with pytest.raises(Forbidden):
        await world.handler.unsubscribe(
            pb.UnsubscribeRequest(subscription_id=made.subscription_id, customer_id=ANN),
            call("Unsubscribe", BILLING),
        )
    await world.handler.unsubscribe(
        pb.UnsubscribeRequest(subscription_id=made.subscription_id, customer_id=BOB),
        call("Unsubscribe", BILLING),
    )
    await world.handler.unsubscribe(
        pb.UnsubscribeRequest(subscription_id=made.subscription_id, customer_id=BOB),
        call("Unsubscribe", BILLING),
    )

    assert world.fake.get(made.subscription_id)["status"] == "canceled"


# -- roles -------------------------------------------------------------------------------

_OWN = customer(ANN)
_OTHER = customer(BOB)

Call = Callable[[World, Account | None], Awaitable[object]]


async def _checkout(world: World, account: Account | None) -> object:
    return await world.handler.create_checkout_session(
        pb.CreateCheckoutSessionRequest(amount=1500), call("CreateCheckoutSession", account)
    )


async def _setup(world: World, account: Account | None) -> object:
    return await world.handler.setup_card(pb.SetupCardRequest(), call("SetupCard", account))


async def _cards(world: World, account: Account | None) -> object:
    return await world.handler.list_cards(pb.ListCardsRequest(), call("ListCards", account))


async def _charge(world: World, account: Account | None) -> object:
    card = await world.card_of(ANN)
    return await world.handler.charge_card(
        pb.ChargeCardRequest(id=card, amount=1500), call("ChargeCard", account)
    )


async def _delete_card(world: World, account: Account | None) -> object:
    card = await world.card_of(ANN)
    return await world.handler.delete_card(
        pb.DeleteCardRequest(id=card), call("DeleteCard", account)
    )


async def _payments(world: World, account: Account | None) -> object:
    return await world.handler.list_payments(
        pb.ListPaymentsRequest(customer_id=ANN), call("ListPayments", account)
    )


async def _payment(world: World, account: Account | None) -> object:
    charge = await _paid(world, ANN)
    return await world.handler.get_payment(
        pb.GetPaymentRequest(id=charge), call("GetPayment", account)
    )


async def _subscribe(world: World, account: Account | None) -> object:
    card = await world.card_of(ANN)
    price = world.fake.add_price(unit_amount=2000)
    return await world.handler.subscribe(
        pb.SubscribeRequest(
            price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="r"
        ),
        call("Subscribe", account),
    )


async def _unsubscribe(world: World, account: Account | None) -> object:
    card = await world.card_of(ANN)
    price = world.fake.add_price(unit_amount=2000)
    made = await world.handler.subscribe(
        pb.SubscribeRequest(
            price_id=price["id"], card_id=card, customer_id=ANN, idempotency_key="r"
        ),
        call("Subscribe", BILLING),
    )
    return await world.handler.unsubscribe(
        pb.UnsubscribeRequest(subscription_id=made.subscription_id, customer_id=ANN),
        call("Unsubscribe", account),
    )


async def _delete_customer(world: World, account: Account | None) -> object:
    await world.customers.ensure("test", ANN)
    return await world.handler.delete_customer(
        pb.DeleteCustomerRequest(customer_id=ANN), call("DeleteCustomer", account)
    )


async def _webhook(world: World, account: Account | None) -> object:
    return await world.handler.webhook(
        pb.WebhookRequest(payload=b"{}", signature="t=1,v1=x"), call("Webhook", account)
    )


OK = None
# Each endpoint with what each role gets: None (allowed) or the error kind. Customers act on
# themselves, so "other customer" is allowed where the call is its own (its own cards, its
# own checkout), and refused where it names ANN's objects.
MATRIX: dict[str, tuple[Call, dict[str, type[M3OError] | None]]] = {
    "CreateCheckoutSession": (
        _checkout,
        {"own": OK, "other": OK, "admin": OK, "service": Forbidden},
    ),
    "SetupCard": (_setup, {"own": OK, "other": OK, "admin": OK, "service": Forbidden}),
    "ListCards": (_cards, {"own": OK, "other": OK, "admin": OK, "service": Forbidden}),
    "ChargeCard": (
        _charge,
        {"own": OK, "other": Forbidden, "admin": Forbidden, "service": Forbidden},
    ),
    "DeleteCard": (
        _delete_card,
        {"own": OK, "other": Forbidden, "admin": Forbidden, "service": Forbidden},
    ),
    "ListPayments": (_payments, {"own": OK, "other": Forbidden, "admin": OK, "service": OK}),
    "GetPayment": (_payment, {"own": OK, "other": NotFound, "admin": OK, "service": OK}),
    "Subscribe": (
        _subscribe,
        {"own": Forbidden, "other": Forbidden, "admin": Forbidden, "service": OK},
    ),
    "Unsubscribe": (
        _unsubscribe,
        {"own": Forbidden, "other": Forbidden, "admin": Forbidden, "service": OK},
    ),
    "DeleteCustomer": (
        _delete_customer,
        {"own": Forbidden, "other": Forbidden, "admin": OK, "service": OK},
    ),
    # only the gateway's account (test_webhook_from_the_gateway_checks_the_signature)
    "Webhook": (
        _webhook,
        {"own": Forbidden, "other": Forbidden, "admin": Forbidden, "service": Forbidden},
    ),
}
ROLES: dict[str, Account] = {"own": _OWN, "other": _OTHER, "admin": ADMIN, "service": BILLING}


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
async def test_roles(world: World, endpoint: str, role: str) -> None:
    run, expected = MATRIX[endpoint]
    if role == "anonymous":
        with pytest.raises(Unauthorized):
            await run(world, ANONYMOUS)
        return
    error = expected[role]
    if error is None:
        await run(world, ROLES[role])
    else:
        with pytest.raises(error):
            await run(world, ROLES[role])


async def test_webhook_from_the_gateway_checks_the_signature(world: World) -> None:
    with pytest.raises(BadRequest):
        await _webhook(world, GATEWAY)


# -- payments not configured, Stripe unreachable ------------------------------------------


async def test_without_a_stripe_key_payments_are_unavailable_not_an_internal_error(
    sessions: SessionFactory, stripe_fake: StripeFake
) -> None:
    world = make_world(sessions, stripe_fake, api_key="")
    ctx = call("CreateCheckoutSession", customer(ANN))
    with pytest.raises(Unavailable) as raised:
        await world.handler.create_checkout_session(
            pb.CreateCheckoutSessionRequest(amount=MIN_AMOUNT), ctx
        )
    assert raised.value == Unavailable("stripe.createcheckoutsession", NOT_CONFIGURED)
    with pytest.raises(Unavailable):
        await world.handler.setup_card(pb.SetupCardRequest(), call("SetupCard", customer(ANN)))
    assert stripe_fake.requests == []


async def test_an_unreachable_stripe_is_unavailable(
    sessions: SessionFactory, stripe_fake: StripeFake
) -> None:
    world = make_world(sessions, stripe_fake, api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable) as raised:
        await world.handler.create_checkout_session(
            pb.CreateCheckoutSessionRequest(amount=MIN_AMOUNT),
            call("CreateCheckoutSession", customer(ANN)),
        )
    assert raised.value == Unavailable("stripe.createcheckoutsession", PROVIDER_UNREACHABLE)
    await world.connection.close()
