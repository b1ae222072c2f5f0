"""compose.yaml: valid under the Compose Specification, every platform service in its own
container after the migrations, the gateway twice, health checks that tell serving from not,
and the configuration from the environment with no secret written in the file.

``compose-spec.json`` is the Compose Specification's schema, copied from
github.com/compose-spec/compose-spec (``schema/compose-spec.json`` at commit 170098ba;
Apache License 2.0): no Docker engine is needed to check the file.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from m3o.runtime.config import build_config
from support.deploy_files import compose, secret_environment_names, service_names
from support.platform import KEY_ENCRYPTION_KEY
from support.ports import free_port

SCHEMA = Path(__file__).with_name("compose-spec.json")
SHARED = {"postgres", "redis"}
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")


def _m3o_containers() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if n not in SHARED}


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    # The schema names draft-07 in a spelling jsonschema does not look up: say it here.
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(compose())


def test_every_platform_service_runs_in_its_own_container() -> None:
    containers = _m3o_containers()
    assert set(containers) == service_names() | {"migrate", "gateway"}
    for name in service_names():
        assert containers[name]["command"] == ["run", name]
    assert containers["migrate"]["command"] == ["migrate"]
    assert containers["gateway"]["command"] == ["run", "gateway"]
    assert containers["gateway"]["deploy"]["replicas"] == 2


def test_every_m3o_container_starts_after_the_migrations_and_runs_unprivileged() -> None:
    services = compose()["services"]
    for name, container in _m3o_containers().items():
        assert container["image"] == services["migrate"]["image"], "one image for all"
        assert container["read_only"] is True, name
        assert container["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in container["security_opt"], name
        if name == "migrate":
            assert container["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        waits = container["depends_on"]
        assert waits["migrate"] == {"condition": "service_completed_successfully"}, name
        assert waits["redis"] == {"condition": "service_healthy"}, name
        assert "healthcheck" in container, name
    gateway_waits = services["gateway"]["depends_on"]
    assert all(gateway_waits[s] == {"condition": "service_healthy"} for s in service_names())


def test_postgres_and_redis_are_health_checked_and_redis_never_evicts() -> None:
    services = compose()["services"]
    assert all("healthcheck" in services[s] for s in SHARED)
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"


def test_configuration_comes_from_the_environment_and_no_secret_is_written_here() -> None:
    secrets = secret_environment_names()
    for name, container in _m3o_containers().items():
        environment = container["environment"]
        if name != "migrate":
            assert environment["M3O_SERVER__SERVICE_ADDRESS_TEMPLATE"] == "{service}:9090"
        for variable, value in environment.items():
            if variable not in secrets:
                continue
            credentials = re.match(r"^[a-z]+://[^:/@]+:(?P<password>.*)@", value)
            if credentials:
                assert INTERPOLATION.match(credentials["password"]), (name, variable)
            elif "://" not in value:
                assert INTERPOLATION.match(value), (name, variable)


def test_every_containers_environment_is_a_valid_configuration() -> None:
    for name, container in _m3o_containers().items():
        # compose fills the interpolations from .env; a value every secret setting accepts
        # (32 bytes in base64, as the key-encryption key must be) stands for them here.
        environment = {
            variable: re.sub(r"\$\{[^}]+\}", KEY_ENCRYPTION_KEY, value)
            for variable, value in container["environment"].items()
            if variable.startswith("M3O_") and "__" in variable
        }
        loaded = build_config({}, environment)  # an unknown or bad key raises, naming it
        assert loaded.database.url.startswith("postgresql://m3o:"), name
        assert loaded.redis.url == "redis://redis:6379/0", name


def _healthcheck_command(name: str, port: int) -> list[str]:
    test = compose()["services"][name]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    return [
        sys.executable,
        *(a.replace("8080", str(port)).replace("9090", str(port)) for a in test[2:]),
    ]


def _exit_code(command: list[str]) -> int:
    return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode


async def test_service_healthcheck_passes_only_while_the_service_serves() -> None:
    port = free_port()
    command = _healthcheck_command("customers", port)
    assert _exit_code(command) != 0, "nothing listening"
    server = grpc.aio.server()
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        assert await _async_exit_code(command) == 0
        await health.enter_graceful_shutdown()
        assert await _async_exit_code(command) != 0
    finally:
        await server.stop(None)


async def _async_exit_code(command: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(*command)
    return await asyncio.wait_for(process.wait(), timeout=60)


@contextmanager
def _answering(status: int) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_gateway_healthcheck_follows_readyz(status: int, healthy: bool) -> None:
    with _answering(status) as port:
        assert (_exit_code(_healthcheck_command("gateway", port)) == 0) is healthy
