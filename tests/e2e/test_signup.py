"""Signing up over HTTP against `m3o serve`: the code and the reset token come by email
(read from the local outbox), the customer logs in, recovers the password, logs in again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.serving import CODE_SENTENCE, RESET_TOKEN, Platform, serving

pytestmark = pytest.mark.e2e

EMAIL = "new.customer@example.com"
NOTICE = re.compile(r"(log in with your password)")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    yield from serving(tmp_path)


def test_signup_verify_login_recover_and_reset_over_http(platform: Platform) -> None:
    invalid = platform.post("/signup/user", {"email": "not-an-email"})
    assert invalid.status_code == 400, invalid.text
    assert invalid.json()["id"] == "signup.user"
    for hostile in ("<script>@x.com", '"a"@example.com'):
        refused = platform.post("/signup/user", {"email": hostile})
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"].startswith("Invalid email: ")
    nul = platform.post("/signup/user", {"email": "a\u0000b@example.com"})
    assert nul.status_code == 400, nul.text  # refused at the HTTP edge, as NUL anywhere
    assert nul.json()["detail"] == "Request must not contain NUL characters"

    started = platform.post("/signup/user", {"email": f"  {EMAIL.upper()} "})
    assert started.status_code == 200, started.text
    code = platform.latest_email(EMAIL, "verification", CODE_SENTENCE)

    wrong = platform.post(
        "/signup/verify", {"email": EMAIL, "token": "ZZZZZZZZ", "secret": "first password"}
    )
    assert wrong.json() == {
        "id": "signup.verify",
        "code": 403,
        "detail": "The token you provided is invalid",
        "status": "Forbidden",
    }

    verified = platform.post(
        "/signup/verify", {"email": EMAIL, "token": code, "secret": "first password"}
    )
    assert verified.status_code == 200, verified.text
    session = verified.json()
    assert session["namespace"] == "micro"
    assert set(session["authToken"]) >= {"access_token", "refresh_token", "created", "expiry"}
    customer_id = session["customerID"]

    read = platform.post(
        "/customers/read", {"id": customer_id}, session["authToken"]["access_token"]
    )
    assert read.status_code == 200, read.text
    assert read.json()["customer"]["status"] == "verified"

    reused = platform.post(
        "/signup/verify", {"email": EMAIL, "token": code, "secret": "first password"}
    )
    assert reused.status_code == 404, reused.text
    again = platform.post("/signup/user", {"email": EMAIL})
    fresh = platform.post("/signup/user", {"email": "someone.else@example.com"})
    assert (again.status_code, again.json()) == (fresh.status_code, fresh.json()) == (200, {})
    platform.latest_email(EMAIL, "account_exists", NOTICE)

    login = platform.post("/customers/login", {"email": EMAIL, "password": "first password"})
    assert login.status_code == 200, login.text

    recovered = platform.post("/signup/recover", {"email": EMAIL})
    assert recovered.status_code == 200, recovered.text
    assert platform.post("/signup/recover", {"email": EMAIL}).status_code == 429
    assert platform.post("/signup/recover", {"email": "nobody@example.com"}).status_code == 200
    assert platform.post("/signup/recover", {"email": "nobody@example.com"}).status_code == 429
    token = platform.latest_email(EMAIL, "recovery", RESET_TOKEN)

    reset = platform.post(
        "/signup/resetPassword", {"email": EMAIL, "token": token, "password": "second password"}
    )
    assert reset.status_code == 200, reset.text
    reused_token = platform.post(
        "/signup/resetPassword", {"email": EMAIL, "token": token, "password": "third password"}
    )
    assert reused_token.status_code == 400, reused_token.text

    old = platform.post("/customers/login", {"email": EMAIL, "password": "first password"})
    assert old.status_code == 401, old.text
    new = platform.post("/customers/login", {"email": EMAIL, "password": "second password"})
    assert new.status_code == 200, new.text

    assert platform.post("/signup/track", {"id": "visitor-1", "referrer": "x"}).status_code == 200
    assert platform.post("/signup/waitlist", {"email": "later@example.com"}).status_code == 200
