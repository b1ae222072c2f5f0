"""Calling another service: its unexpected errors are logged and become Unavailable when
the other service was unavailable (or out of time), else Internal."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import (
    Conflict,
    DeadlineExceeded,
    Forbidden,
    Internal,
    M3OError,
    NotFound,
    Unavailable,
)
from m3o.runtime.rpc import INTERNAL_DETAIL, UNAVAILABLE_DETAIL
from m3o.runtime.rpc.calls import Calls

CTX = CallContext("signup", "Verify")


async def answer(value: str) -> str:
    return value


async def fail(error: BaseException) -> str:
    raise error


async def test_the_call_answers_what_the_other_service_answered() -> None:
    with capture_logs() as logs:
        got = await Calls("signup.call_failed").call(CTX, "customers.read", answer("found"))
    assert got == "found"
    assert logs == []


async def test_an_unavailable_service_is_logged_and_the_caller_gets_unavailable() -> None:
    failure = Unavailable("customers.read", "database is down")
    with capture_logs() as logs, pytest.raises(Unavailable) as caught:
        await Calls("signup.call_failed").call(CTX, "customers.read", fail(failure))
    assert caught.value == Unavailable("signup.verify", UNAVAILABLE_DETAIL)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert logs == [
        {
            "event": "signup.call_failed",
            "log_level": "error",
            "endpoint": "signup.verify",
            "call": "customers.read",
            "kind": "Unavailable",
            "error_id": "customers.read",
            "detail": "database is down",
        }
    ]


@pytest.mark.parametrize(
    ("failure", "answered"),
    [
        (DeadlineExceeded("customers.read"), Unavailable("signup.verify", UNAVAILABLE_DETAIL)),
        (Internal("customers.read", "a bug"), Internal("signup.verify", INTERNAL_DETAIL)),
        (Conflict("customers.read", "taken"), Internal("signup.verify", INTERNAL_DETAIL)),
        (Forbidden("customers.read", "no"), Internal("signup.verify", INTERNAL_DETAIL)),
    ],
    ids=["deadline", "internal", "conflict", "forbidden"],
)
async def test_out_of_time_is_unavailable_and_any_other_failure_internal(
    failure: M3OError, answered: M3OError
) -> None:
    with capture_logs() as logs, pytest.raises(M3OError) as caught:
        await Calls("signup.call_failed").call(CTX, "customers.read", fail(failure))
    assert caught.value == answered
    assert type(caught.value) is type(answered)
    assert [entry["kind"] for entry in logs] == [type(failure).__name__]


async def test_an_expected_kind_passes_unchanged_and_is_not_logged() -> None:
    failure = NotFound("customers.read", "Not found")
    with capture_logs() as logs, pytest.raises(NotFound) as caught:
        await Calls("signup.call_failed").call(
            CTX, "customers.read", fail(failure), passes=(NotFound, Conflict)
        )
    assert caught.value is failure
    assert logs == []


async def test_only_the_listed_kinds_pass() -> None:
    with pytest.raises(Internal):
        await Calls("signup.call_failed").call(
            CTX, "customers.read", fail(Conflict("customers.read", "taken")), passes=(NotFound,)
        )


async def test_a_crash_is_left_to_the_dispatcher() -> None:
    crash = RuntimeError("a bug")
    with capture_logs() as logs, pytest.raises(RuntimeError) as caught:
        await Calls("signup.call_failed").call(CTX, "customers.read", fail(crash))
    assert caught.value is crash
    assert logs == []


async def test_the_label_names_the_call_field_and_context_is_logged() -> None:
    failure = Unavailable("customers.read", "down")
    calls = Calls("balance.customers_read_failed", label="step")
    with capture_logs() as logs, pytest.raises(Unavailable):
        await calls.call(CTX, "customers.read", fail(failure), customer_id="c1")
    [logged] = logs
    assert logged["step"] == "customers.read"
    assert "call" not in logged
    assert logged["customer_id"] == "c1"


def test_failure_logs_and_returns_the_generic_error_for_the_handler_to_raise() -> None:
    failure: M3OError = Conflict("auth.generate", "exists")
    with capture_logs() as logs:
        error = Calls("v1.call_failed").failure(CTX, "auth.generate", failure)
    assert error == Internal("signup.verify", INTERNAL_DETAIL)
    assert [entry["event"] for entry in logs] == ["v1.call_failed"]
    assert logs[0]["kind"] == "Conflict"
