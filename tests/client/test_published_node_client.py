"""M3O's published npm client (`m3o`, over `@m3o/m3o-node`) against `m3o serve`.

The client is the one its users install from the npm registry, at the version pinned in
`tests/client/node/package-lock.json` (`.ci/run` installs it with `npm ci`). Each scenario
is a Node process running `tests/client/node/helloworld.js`, pointed at the platform as the
README says. A refused stream must end the stream with M3O's error document, and the Node
process must go on: an HTTP error to the websocket handshake used to crash it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.serving import Platform, serving

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "helloworld.js"
PASSWORD = "a node client password"


def _node() -> str:
    """The node binary, with the pinned client installed; the test fails (never skips) else."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: M3O's npm client cannot be tested (install Node.js)")
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["m3o"]
    installed = NODE_DIR / "node_modules" / "m3o" / "package.json"
    if not installed.is_file():
        pytest.fail(f"the npm m3o client is not installed: run `npm ci` in {NODE_DIR}")
    version = json.loads(installed.read_text())["version"]
    if version != pinned:
        pytest.fail(f"npm m3o {version} is installed, not {pinned}: run `npm ci` in {NODE_DIR}")
    return node


@dataclass
class Keys:
    platform: Platform
    active: str
    blocked: str


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _customer_keys(platform: Platform) -> Keys:
    """A funded customer with two helloworld keys, the second blocked by an admin."""
    admin = platform.admin_token()
    email = "node@example.com"
    customer = _ok(platform.post("/customers/create", {"email": email}, admin))["customer"]
    account = {"id": customer["id"], "type": "customer", "scopes": ["customer"]}
    _ok(platform.post("/auth/generate", {**account, "name": email, "secret": PASSWORD}, admin))
    _ok(platform.post("/customers/markVerified", {"id": customer["id"]}, admin))
    funds = {"customer_id": customer["id"], "delta": 1_000_000, "reference": "Node funds"}
    _ok(platform.post("/balance/increment", {**funds, "idempotency_key": "node-funds"}, admin))
    login = _ok(platform.post("/customers/login", {"email": email, "password": PASSWORD}))
    token = login["token"]["access_token"]

    def key(description: str) -> dict[str, Any]:
        wanted = {"scopes": ["helloworld"], "description": description}
        return _ok(platform.post("/v1/api/keys/generate", wanted, token))

    active, blocked = key("node"), key("node, blocked")
    block = {"key_id": blocked["api_key_id"], "message": "Stopped by the operator"}
    _ok(platform.post("/v1/api/keys/block", block, admin))
    return Keys(platform, active["api_key"], blocked["api_key"])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    _node()
    for platform in serving(tmp_path_factory.mktemp("node-client")):
        yield _customer_keys(platform)


def _run(keys: Keys, key: str, scenario: str) -> dict[str, Any]:
    """The scenario's JSON document; the Node process must exit 0 by itself."""
    env = {**os.environ, "M3O_API_TOKEN": key, "M3O_ADDRESS": f"{keys.platform.url}/"}
    done = subprocess.run(
        [_node(), str(SCRIPT), scenario],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"node exited {done.returncode}: {done.stderr}{done.stdout}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_npm_client_calls_and_streams_helloworld(keys: Keys) -> None:
    result = _run(keys, keys.active, "calls")
    assert result == {
        "call": {"message": "Hello Alice"},
        "streamed": [{"message": "Hello Bob"}] * 3,
        "direct": {"message": "Hello Carol"},
        "alive": True,
    }


@pytest.mark.parametrize(
    ("key", "code", "error"),
    [
        (
            "m3o_not_a_key",
            4401,
            {"id": "v1", "code": 401, "detail": "Unauthorized", "status": "Unauthorized"},
        ),
        (
            "blocked",
            4403,
            {
                "id": "v1.blocked",
                "code": 403,
                "detail": "Request blocked. Stopped by the operator",
                "status": "Forbidden",
            },
        ),
    ],
    ids=["unknown key", "blocked key"],
)
def test_a_refused_stream_rejects_with_the_error_and_the_process_goes_on(
    keys: Keys, key: str, code: int, error: dict[str, Any]
) -> None:
    result = _run(keys, keys.blocked if key == "blocked" else key, "stream")
    assert result == {"refused": {"code": code, "error": error}, "alive": True}
