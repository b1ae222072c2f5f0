"""The address `m3o serve` logs and throttles by is the connection's peer unless
``api.trusted_proxies`` names it: a client's own ``X-Forwarded-For`` is never believed,
not even from 127.0.0.1 (uvicorn's default rule, turned off)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import orjson

from e2e.serving import ADMIN_PASSWORD, serve


def _logged_clients(err: str, path: str) -> list[str]:
    clients = []
    for line in err.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and (entry.get("event"), entry.get("path")) == (
            "http.request",
            path,
        ):
            clients.append(entry["client"])
    return clients


def test_a_forwarded_address_from_an_untrusted_peer_is_not_believed(tmp_path: Path) -> None:
    platform = serve(tmp_path / "data", {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        answered = httpx.get(
            f"{platform.url}/openapi.json", headers={"X-Forwarded-For": "192.0.2.1"}, timeout=30
        )
        assert answered.status_code == 200
    finally:
        err = platform.stop()
    assert _logged_clients(err, "/openapi.json") == ["127.0.0.1"]
