"""The fake speaks Stripe's protocol: idempotency keys, errors, recording, injected failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from support.stripe_fake import StripeError, StripeFake


def test_the_same_idempotency_key_creates_one_customer(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    params: Any = {"email": "ada@example.com", "metadata": {"customer_id": "c1"}}
    first = client.v1.customers.create(params, {"idempotency_key": "customer:c1"})
    second = client.v1.customers.create(params, {"idempotency_key": "customer:c1"})

    assert second.id == first.id
    assert [c.id for c in client.v1.customers.list()] == [first.id]
    assert [r.replayed for r in stripe_fake.requests_to("POST", "/v1/customers")] == [False, True]
    assert len(stripe_fake.events_of("customer.created")) == 1


async def test_concurrent_creates_with_one_key_make_one_customer(
    async_client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    created = await asyncio.gather(
        *(
            async_client.v1.customers.create_async(
                {"email": "ada@example.com"}, {"idempotency_key": "customer:c1"}
            )
            for _ in range(8)
        )
    )

    assert len({customer.id for customer in created}) == 1
    assert len(stripe_fake.events_of("customer.created")) == 1
    assert len(stripe_fake.requests_to("POST", "/v1/customers")) == 8


def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    client.v1.customers.create({"email": "ada@example.com"}, {"idempotency_key": "k"})

    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.customers.create({"email": "bob@example.com"}, {"idempotency_key": "k"})

    error = raised.value.error
    assert raised.value.http_status == 400
    assert error is not None and error.type == "idempotency_error"
    assert error.message is not None and "same parameters" in error.message
    assert len(client.v1.customers.list().data) == 1


def test_a_key_reused_on_another_endpoint_is_an_idempotency_error(
    client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    client.v1.customers.create({"email": "ada@example.com"}, {"idempotency_key": "k"})

    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        client.v1.setup_intents.create({"customer": customer.id}, {"idempotency_key": "k"})


def test_errors_in_the_parameters_are_not_kept_under_the_key(client: stripe.StripeClient) -> None:
    bad: Any = {"amount": 2000}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(bad, {"idempotency_key": "pay-1"})
    assert (raised.value.code, raised.value.param) == ("parameter_missing", "currency")

    intent = client.v1.payment_intents.create(
        {"amount": 2000, "currency": "usd"}, {"idempotency_key": "pay-1"}
    )

    assert intent.status == "requires_payment_method"


def test_a_decline_is_kept_under_the_key_and_replayed_without_a_second_charge(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    params: Any = {
        "amount": 2000,
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
    }
    for _ in range(2):
        with pytest.raises(stripe.CardError) as raised:
            client.v1.payment_intents.create(params, {"idempotency_key": "pay-1"})
        assert raised.value.code == "card_declined"

    assert len(client.v1.charges.list().data) == 1
    replays = [r.replayed for r in stripe_fake.requests_to("POST", "/v1/payment_intents")]
    assert replays == [False, True]


def test_an_idempotency_key_is_forgotten_after_24_hours() -> None:
    now = [1_800_000_000]
    fake = StripeFake(clock=lambda: now[0])
    with fake.running():
        http = stripe.RequestsClient()
        client = fake.client(http_client=http)
        first = client.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "k"})
        now[0] += 24 * 3600
        second = client.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "k"})
        http.close()  # type: ignore[no-untyped-call]

    assert second.id != first.id


def test_a_missing_object_in_the_url_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.retrieve("cus_missing")

    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "id")
    assert error.user_message == "No such customer: 'cus_missing'"


def test_a_missing_object_in_a_parameter_is_400_resource_missing(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_methods.attach("pm_card_visa", {"customer": "cus_missing"})

    error = raised.value
    assert (error.http_status, error.code, error.param) == (400, "resource_missing", "customer")


def test_a_failed_request_leaves_nothing_behind(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.create({"email": "ada@example.com", "payment_method": "pm_missing"})

    assert raised.value.param == "payment_method"
    assert client.v1.customers.list().data == []
    assert stripe_fake.events == []


def test_unknown_parameters_are_refused(client: stripe.StripeClient) -> None:
    bad: Any = {"email": "ada@example.com", "emial": "typo"}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.create(bad)

    assert (raised.value.code, raised.value.param) == ("parameter_unknown", "emial")


def test_parameters_the_fake_does_not_model_are_refused_saying_so(
    client: stripe.StripeClient, customer: stripe.Customer
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="does not model") as raised:
        client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": "price_x"}], "trial_period_days": 7}
        )

    assert raised.value.param == "trial_period_days"


def test_an_unknown_url_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="Unrecognized request URL"):
        client.raw_request("get", "/v1/refunds")


def test_a_wrong_api_key_is_401(stripe_fake: StripeFake) -> None:
    http = stripe.RequestsClient()
    client = stripe.StripeClient(
        "sk_test_wrong", base_addresses={"api": stripe_fake.base_url}, http_client=http
    )
    try:
        with pytest.raises(stripe.AuthenticationError) as raised:
            client.v1.customers.list()
    finally:
        http.close()  # type: ignore[no-untyped-call]

    assert raised.value.http_status == 401
    assert stripe_fake.requests[-1].status == 401


def test_every_request_is_recorded_with_its_parameters_and_key(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    created = client.v1.customers.create(
        {"email": "ada@example.com", "metadata": {"customer_id": "c1"}},
        {"idempotency_key": "customer:c1"},
    )
    client.v1.customers.retrieve(
        created.id, {"expand": ["invoice_settings.default_payment_method"]}
    )

    create, retrieve = stripe_fake.requests
    assert (create.method, create.path, create.status) == ("POST", "/v1/customers", 200)
    assert create.params == {"email": "ada@example.com", "metadata": {"customer_id": "c1"}}
    assert create.idempotency_key == "customer:c1"
    assert create.stripe_version == stripe.api_version
    assert (retrieve.method, retrieve.path) == ("GET", f"/v1/customers/{created.id}")
    assert retrieve.params == {"expand": ["invoice_settings.default_payment_method"]}
    assert retrieve.idempotency_key is None
    assert stripe_fake.requests_to("GET", "/v1/customers/*") == [retrieve]


def test_injected_failures_answer_the_next_requests_then_stop(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    stripe_fake.fail_next("POST", "/v1/customers", times=2)

    for _ in range(2):
        with pytest.raises(stripe.APIError) as raised:
            client.v1.customers.create({"email": "ada@example.com"}, {"idempotency_key": "k"})
        assert raised.value.http_status == 500
    assert client.v1.customers.list().data == []

    # Nothing was kept under the key: the retry goes through.
    created = client.v1.customers.create({"email": "ada@example.com"}, {"idempotency_key": "k"})

    assert client.v1.customers.list().data[0].id == created.id
    statuses = [r.status for r in stripe_fake.requests_to("POST", "/v1/customers")]
    assert statuses == [500, 500, 200]


def test_an_injected_card_error_matches_paths_with_ids(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    intent = client.v1.payment_intents.create(
        {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"}
    )
    stripe_fake.fail_next(
        "POST",
        "/v1/payment_intents/{id}/confirm",
        error=StripeError.card_declined("insufficient_funds"),
    )

    with pytest.raises(stripe.CardError) as raised:
        client.v1.payment_intents.confirm(intent.id)

    assert raised.value.code == "card_declined"
    assert raised.value.error is not None
    assert raised.value.error.decline_code == "insufficient_funds"
    assert client.v1.payment_intents.confirm(intent.id).status == "succeeded"


def test_an_injected_rate_limit_is_429(
    client: stripe.StripeClient, stripe_fake: StripeFake
) -> None:
    stripe_fake.fail_next("GET", "/v1/customers", error=StripeError.rate_limited())

    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.list()


def test_reset_forgets_everything(client: stripe.StripeClient, stripe_fake: StripeFake) -> None:
    client.v1.customers.create({"email": "ada@example.com"}, {"idempotency_key": "k"})
    stripe_fake.fail_next("GET", "/v1/customers")

    stripe_fake.reset()

    assert stripe_fake.requests == [] and stripe_fake.events == []
    assert client.v1.customers.list().data == []
    again = client.v1.customers.create({"email": "other@example.com"}, {"idempotency_key": "k"})
    assert again.email == "other@example.com"


@pytest.fixture
def two_fakes() -> Iterator[tuple[StripeFake, StripeFake]]:
    with StripeFake().running() as first, StripeFake(api_key="sk_test_other").running() as second:
        yield first, second


def test_clients_of_two_fakes_do_not_share_configuration(
    two_fakes: tuple[StripeFake, StripeFake],
) -> None:
    first, second = two_fakes
    http = stripe.RequestsClient()
    try:
        first.client(http_client=http).v1.customers.create({"email": "a@example.com"})
        second.client(http_client=http).v1.customers.create({"email": "b@example.com"})
    finally:
        http.close()  # type: ignore[no-untyped-call]

    assert [r.params["email"] for r in first.requests] == ["a@example.com"]
    assert [r.params["email"] for r in second.requests] == ["b@example.com"]
