"""Error kinds: their ids, and how each crosses HTTP and gRPC."""

from __future__ import annotations

import grpc
import pytest

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import (
    DeadlineExceeded,
    Unavailable,
    error_from_grpc,
    error_from_json,
    error_id,
)

DETAIL = "Deadline exceeded"


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


def test_deadline_exceeded_is_an_unavailable_with_its_own_grpc_status() -> None:
    error = DeadlineExceeded("customers.read")
    assert isinstance(error, Unavailable)
    assert error.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (error.code, error.status, error.detail) == (503, "Service Unavailable", DETAIL)


def test_deadline_exceeded_is_the_same_document_over_http_as_before() -> None:
    assert DeadlineExceeded("customers.read").to_dict() == {
        "id": "customers.read",
        "code": 503,
        "detail": "Deadline exceeded",
        "status": "Service Unavailable",
    }
    assert (
        DeadlineExceeded("customers.read").to_json()
        == Unavailable("customers.read", DETAIL).to_json()
    )


def test_deadline_exceeded_crosses_grpc_as_itself() -> None:
    sent = DeadlineExceeded("customers.read")
    received = error_from_grpc(sent.grpc_code, sent.to_json().decode(), "other.id")
    assert received == sent
    assert type(received) is DeadlineExceeded


@pytest.mark.parametrize("details", [None, "", "Deadline Exceeded"])
def test_a_bare_deadline_exceeded_status_is_deadline_exceeded(details: str | None) -> None:
    received = error_from_grpc(grpc.StatusCode.DEADLINE_EXCEEDED, details, "customers.read")
    assert received == DeadlineExceeded("customers.read", DETAIL)


def test_an_unavailable_status_stays_unavailable() -> None:
    sent = Unavailable("customers.read", "Service unavailable")
    received = error_from_grpc(sent.grpc_code, sent.to_json().decode(), "other.id")
    assert type(received) is Unavailable
    assert received == sent


def test_an_http_document_cannot_tell_a_deadline_from_other_unavailability() -> None:
    received = error_from_json(DeadlineExceeded("customers.read").to_json())
    assert received == Unavailable("customers.read", DETAIL)
