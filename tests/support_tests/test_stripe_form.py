"""Reading Stripe's form encoding back into the parameters the library sent."""

from __future__ import annotations

import pytest

from support.stripe_fake._form import FormError, decode_form


def test_brackets_nest_and_indices_make_lists() -> None:
    encoded = (
        "customer=cus_1&line_items[0][price_data][currency]=usd"
        "&line_items[0][price_data][product_data][name]=M3O%20credit&line_items[0][quantity]=1"
        "&line_items[1][price]=price_1&expand[0]=customer&expand[1]=payment_intent"
    )

    assert decode_form(encoded) == {
        "customer": "cus_1",
        "line_items": [
            {
                "price_data": {"currency": "usd", "product_data": {"name": "M3O credit"}},
                "quantity": "1",
            },
            {"price": "price_1"},
        ],
        "expand": ["customer", "payment_intent"],
    }


def test_indices_are_ordered_by_number_not_text() -> None:
    encoded = "&".join(f"items[{i}][price]=p{i}" for i in range(12))

    assert [item["price"] for item in decode_form(encoded)["items"]] == [f"p{i}" for i in range(12)]


def test_empty_brackets_append() -> None:
    assert decode_form("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}


def test_metadata_keys_stay_keys_even_when_they_are_numbers() -> None:
    assert decode_form("metadata[0]=zero&metadata[order]=7") == {
        "metadata": {"0": "zero", "order": "7"}
    }


def test_an_empty_value_is_kept_so_metadata_can_be_unset() -> None:
    assert decode_form("metadata[order]=&description=") == {
        "metadata": {"order": ""},
        "description": "",
    }


@pytest.mark.parametrize("encoded", ["a]=1", "a[b=1", "a=1&a[b]=2", "a[b]=2&a=1"])
def test_malformed_or_contradicting_keys_are_refused(encoded: str) -> None:
    with pytest.raises(FormError):
        decode_form(encoded)
