"""Keys moved from M3O, against `m3o serve`: `m3o keys import` brings them in, and they call
helloworld through /v1 as they did there, charged and metered like any key, listed as
legacy; a revoked one stops working; a rolled one works only with its new key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from e2e.serving import ADMIN_PASSWORD, CODE_SENTENCE, M3O, Platform, eventually, serving
from m3o.client import Client

pytestmark = pytest.mark.e2e

EMAIL = "moved@example.com"
PASSWORD = "a moved password"
FUNDS = 1_000_000
PRICE = 7


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    yield from serving(tmp_path / "data")


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _m3o(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD, "M3O_TOKEN": ""}
    return subprocess.run(
        [*M3O, *args, "--address", platform.url, "--data-dir", str(platform.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _m3o_key() -> str:
    """A key as M3O generated it: the base64 of a random UUID's text."""
    return base64.b64encode(str(uuid.uuid4()).encode()).decode()


def _call(platform: Platform, key: str) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/v1/helloworld/call",
        json={"name": "Mo"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _signed_up_customer(platform: Platform) -> tuple[str, str]:
    """A verified, funded customer: (id, access token)."""
    admin = platform.admin_token()
    customer = _ok(platform.post("/customers/create", {"email": EMAIL}, admin))["customer"]
    _ok(platform.post("/signup/user", {"email": EMAIL}))
    code = platform.latest_email(EMAIL, "verification", CODE_SENTENCE)
    _ok(platform.post("/signup/verify", {"email": EMAIL, "token": code, "secret": PASSWORD}))
    funds = {
        "customer_id": customer["id"],
        "delta": FUNDS,
        "reference": "funds",
        "idempotency_key": "moved-funds",
        "visible": True,
    }
    _ok(platform.post("/balance/increment", funds, admin))
    login = _ok(platform.post("/customers/login", {"email": EMAIL, "password": PASSWORD}))
    return customer["id"], login["token"]["access_token"]


def _price_helloworld_call(platform: Platform) -> None:
    admin = platform.admin_token()
    entry = _ok(platform.post("/publicapi/get", {"name": "helloworld"}, admin))["api"]
    pricing = {**entry.get("pricing", {}), "Helloworld.Call": PRICE}
    update = {"id": entry["id"], "pricing": pricing, "quotas": {"Helloworld.Call": 0}}
    _ok(platform.post("/publicapi/update", {"api": update}, admin))


def _balance(platform: Platform, token: str) -> int:
    return int(_ok(platform.post("/balance/current", {}, token)).get("current_balance", 0))


def _requests(platform: Platform, token: str) -> int:
    usage = _ok(platform.post("/usage/read", {}, token)).get("usage", {})
    records = usage.get("helloworld", {}).get("records", [])
    return sum(int(r.get("requests", 0)) for r in records)


def test_keys_moved_from_m3o_keep_working(platform: Platform, tmp_path: Path) -> None:
    customer_id, token = _signed_up_customer(platform)
    kept, revoked = _m3o_key(), _m3o_key()
    kept_id, revoked_id = str(uuid.uuid4()), str(uuid.uuid4())
    export = tmp_path / "keys.jsonl"
    rows = [
        # the documented shape
        {
            "id": kept_id,
            "owner": customer_id,
            "project": customer_id,
            "scopes": ["helloworld"],
            "description": "kept",
            "created": 1_650_000_000,
            "hash": hashlib.sha256(kept.encode()).hexdigest(),
        },
        # a record of M3O's v1 store, as it is
        {
            "id": revoked_id,
            "apiKey": hashlib.sha256(revoked.encode()).hexdigest(),
            "scopes": ["*"],
            "userID": customer_id,
            "accID": "acc-1",
            "description": "to revoke",
            "namespace": "micro",
            "token": "an old jwt",
            "created": 1_640_000_000,
            "status": "active",
            "statusMessage": "",
            "lastSeen": 1_660_000_000,
        },
    ]
    export.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")

    # A bad line stops the whole import, naming the line.
    bad = tmp_path / "bad.jsonl"
    bad_line = {"id": str(uuid.uuid4()), "hash": "nope", "project": customer_id, "scopes": ["*"]}
    bad.write_bytes(export.read_bytes() + orjson.dumps(bad_line) + b"\n")
    refused = _m3o(platform, "keys", "import", str(bad))
    assert refused.returncode == 1
    assert "nothing imported: line 3: hash must be the key's hex SHA-256" in refused.stderr
    assert _ok(platform.post("/v1/api/keys/list", {}, token)).get("api_keys", []) == []

    imported = _m3o(platform, "keys", "import", str(export))
    assert imported.returncode == 0, imported.stderr
    assert orjson.loads(imported.stdout) == {"imported": 2, "already_present": 0, "revoked": 0}
    again = _m3o(platform, "keys", "import", str(export))
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout) == {"imported": 0, "already_present": 2, "revoked": 0}

    listed = {k["id"]: k for k in _ok(platform.post("/v1/api/keys/list", {}, token))["api_keys"]}
    assert set(listed) == {kept_id, revoked_id}
    assert listed[kept_id]["legacy"] is True
    assert listed[kept_id]["created_time"] == 1_650_000_000
    assert listed[revoked_id]["last_seen"] == 1_660_000_000

    # The old keys call helloworld through /v1, charged and metered like any key.
    before = _balance(platform, token)
    _price_helloworld_call(platform)
    answers: list[httpx.Response] = []

    def priced_call() -> bool:
        answers.append(_call(platform, kept))
        return answers[-1].headers.get("X-M3O-Price") == str(PRICE)

    eventually(priced_call, "the price reaching the gateway", seconds=20)
    answers.append(_call(platform, revoked))
    assert all(answer.status_code == 200 for answer in answers)
    assert answers[-1].json() == {"message": "Hello Mo"}
    priced = sum(answer.headers.get("X-M3O-Price") == str(PRICE) for answer in answers)
    assert priced >= 2
    eventually(lambda: _balance(platform, token) == before - priced * PRICE, "charges")
    eventually(lambda: _requests(platform, token) == len(answers), "usage")

    async def streamed() -> list[dict[str, Any]]:
        async with Client(kept, platform.url) as client:
            request = {"name": "Mo", "messages": 2}
            return [message async for message in client.stream("helloworld", "Stream", request)]

    assert asyncio.run(streamed()) == [{"message": "Hello Mo"}] * 2  # over a websocket too

    # Revoked: the next call is 401.
    _ok(platform.post("/v1/api/keys/revoke", {"id": revoked_id}, token))
    eventually(lambda: _call(platform, revoked).status_code == 401, "revoked", seconds=5)
    # importing the file again does not bring it back
    reimported = _m3o(platform, "keys", "import", str(export))
    assert orjson.loads(reimported.stdout) == {"imported": 0, "already_present": 1, "revoked": 1}
    assert _call(platform, revoked).status_code == 401

    # Rolled: a key in our format; the old one stops working.
    rolled = _m3o(platform, "keys", "roll", kept_id, "--token", token)
    assert rolled.returncode == 0, rolled.stderr
    new_key = orjson.loads(rolled.stdout)["api_key"]
    assert new_key.startswith("m3o_")
    eventually(lambda: _call(platform, kept).status_code == 401, "rolled", seconds=5)
    assert _call(platform, new_key).status_code == 200
    [shown] = _ok(platform.post("/v1/api/keys/list", {}, token))["api_keys"]
    assert shown["id"] == kept_id
    assert "legacy" not in shown
