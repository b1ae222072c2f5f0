"""Probes: /healthz says the process is up, /readyz that its dependencies answer."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from gateway.support import HELLO, Recorder, Served, build_app, client_for
from m3o.gateway import GatewaySettings, ReadinessCheck
from m3o.gateway.health import Stopping


async def _fine() -> None:
    return None


async def _broken() -> None:
    raise ConnectionError("postgres://admin:hunter2@db refused")


async def _stuck() -> None:
    await asyncio.sleep(30)


async def test_healthz_is_ok_while_the_process_is_up() -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    async with client_for(app) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_when_every_check_passes() -> None:
    checks = [ReadinessCheck("database", _fine), ReadinessCheck("redis", _fine)]
    app, _ = build_app(Served(HELLO, Recorder()), readiness=checks)
    async with client_for(app) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_without_checks_is_ok() -> None:
    app, _ = build_app(Served(HELLO, Recorder()))
    async with client_for(app) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200


async def test_one_failing_check_makes_readyz_503_naming_it_without_its_error() -> None:
    checks = [ReadinessCheck("database", _broken), ReadinessCheck("redis", _fine)]
    app, _ = build_app(Served(HELLO, Recorder()), readiness=checks)
    with capture_logs() as logs:
        async with client_for(app) as http:
            response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "failed", "redis": "ok"},
    }
    assert "hunter2" not in response.text
    assert [e["check"] for e in logs if e["event"] == "readiness.failed"] == ["database"]


async def test_checks_run_concurrently_and_a_slow_one_times_out() -> None:
    checks = [ReadinessCheck(f"slow{i}", _stuck) for i in range(5)]
    settings = GatewaySettings(readiness_timeout=0.05)
    app, _ = build_app(Served(HELLO, Recorder()), readiness=checks, settings=settings)
    started = time.monotonic()
    async with client_for(app) as http:
        response = await http.get("/readyz")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    assert set(response.json()["checks"].values()) == {"timeout"}


async def test_a_stopping_process_is_not_ready_while_it_still_serves() -> None:
    stopping = Stopping()
    checks = [stopping.check, ReadinessCheck("database", _fine)]
    app, _ = build_app(Served(HELLO, Recorder()), readiness=checks)
    with capture_logs() as logs:
        async with client_for(app) as http:
            before = await http.get("/readyz")
            stopping.begin()
            after = await http.get("/readyz")
            alive = await http.get("/healthz")
    assert before.status_code == 200
    assert after.status_code == 503
    assert after.json() == {
        "status": "unavailable",
        "checks": {"shutdown": "stopping", "database": "ok"},
    }
    assert alive.status_code == 200
    assert not [e for e in logs if e["event"].startswith("readiness.")]  # not a failure
