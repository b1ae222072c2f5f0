"""Signing up over HTTP against `m3o serve`: the code and the reset token come by email
(read from the local outbox), the customer logs in, recovers the password, logs in again."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "e2e-admin-password"
EMAIL = "new.customer@example.com"
CODE_SENTENCE = re.compile(
    r"please copy and paste this verification code into the signup form:\s*([A-Z]{8})\s+"
    r"This code expires"
)
RESET_TOKEN = re.compile(r"reset token is\s+([A-Za-z0-9_-]{43})\b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    url: str
    process: subprocess.Popen[str]

    def post(self, path: str, body: dict[str, Any], token: str = "") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30)

    def admin_token(self) -> str:
        response = self.post("/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]["access_token"]
        return token

    def latest_email(self, to: str, template: str, pattern: re.Pattern[str]) -> str:
        """The first group of ``pattern`` in the newest ``template`` email to ``to``."""
        admin = self.admin_token()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listed = self.post("/emails/listOutbox", {"to": to, "limit": 10}, admin)
            assert listed.status_code == 200, listed.text
            for email in listed.json().get("emails", []):
                found = pattern.search(email.get("text", ""))
                if email.get("template_id") == template and found:
                    return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no {template} email to {to} in the outbox")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "m3o", "serve", "--data-dir", str(tmp_path), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"m3o serve exited: {process.communicate()[1]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("m3o serve was not healthy within 30 s")
            time.sleep(0.05)
        yield Platform(url, process)
    finally:
        process.kill()
        process.communicate()


def test_signup_verify_login_recover_and_reset_over_http(platform: Platform) -> None:
    invalid = platform.post("/signup/user", {"email": "not-an-email"})
    assert invalid.status_code == 400, invalid.text
    assert invalid.json()["id"] == "signup.user"

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
    assert again.status_code == 409, again.text

    login = platform.post("/customers/login", {"email": EMAIL, "password": "first password"})
    assert login.status_code == 200, login.text

    recovered = platform.post("/signup/recover", {"email": EMAIL})
    assert recovered.status_code == 200, recovered.text
    assert platform.post("/signup/recover", {"email": EMAIL}).status_code == 429
    assert platform.post("/signup/recover", {"email": "nobody@example.com"}).status_code == 200
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
