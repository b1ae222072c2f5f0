"""Error kinds: their ids, and how each crosses HTTP and gRPC."""

from __future__ import annotations

import pytest

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import error_id


@pytest.mark.parametrize(
    ("service", "method", "expected"),
    [
        ("customers", "Create", "customers.create"),
        ("customers", "MarkVerified", "customers.markverified"),
        ("customers", "Customers.MarkVerified", "customers.markverified"),
        ("v1", "V1.GenerateKey", "v1.generatekey"),
    ],
)
def test_error_id_is_the_service_and_the_lower_cased_method(
    service: str, method: str, expected: str
) -> None:
    assert error_id(service, method) == expected


def test_a_call_context_names_its_errors_with_the_same_id() -> None:
    assert CallContext("signup", "ResetPassword").endpoint == error_id("signup", "ResetPassword")
