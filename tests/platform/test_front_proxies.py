"""The HTTP front takes its trusted proxies from the configuration (``api.trusted_proxies``,
``M3O_API__TRUSTED_PROXIES``): behind an ingress the client is the address the proxy
forwarded, not the proxy."""

from __future__ import annotations

from pathlib import Path

import httpx
from structlog.testing import capture_logs

from m3o.platform.local import open_local
from support.password_hash import CHEAP_PASSWORD_HASH

FORWARDED = {"X-Forwarded-For": "192.0.2.1, 198.51.100.9"}


async def _logged_client(tmp_path: Path, env: dict[str, str]) -> str:
    platform = await open_local(tmp_path, {**env, **CHEAP_PASSWORD_HASH})
    app = platform.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as http:
            with capture_logs() as logs:
                response = await http.get("/healthz", headers=FORWARDED)
    assert response.status_code == 200
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    return str(line["client"])


async def test_the_front_believes_forwarded_addresses_from_configured_proxies_only(
    tmp_path: Path,
) -> None:
    trusting = {"M3O_API__TRUSTED_PROXIES": "10.0.0.0/8"}
    assert await _logged_client(tmp_path / "trusting", trusting) == "198.51.100.9"
    assert await _logged_client(tmp_path / "default", {}) == "10.0.0.5"
