"""A gateway stopped with SIGTERM under load: readiness fails first, every call sent to it
is answered (none gets a connection error), and every call it answered is charged,
counted and in the history once it has exited.

The platform profile as `test_gateway_kill.py` runs it. The test plays the load balancer:
its workers send paid calls, IN_FLIGHT at a time, for as long as the gateway's `/readyz`
answers 200. At SIGTERM helloworld is frozen (SIGSTOP), so calls are in flight while the
gateway stops; it is thawed once readiness has turned 503, and the gateway, which goes on
serving for its shut-down delay, answers them before it stops accepting connections.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
import redis

from support.backends import REDIS_URL
from support.paid_calls import (
    HOLDS,
    Books,
    call_status,
    paid_helloworld_customer,
)
from support.platform import (
    SERVICES,
    STOP_SECONDS,
    Api,
    Process,
    admin_api,
    assert_no_logged_errors,
    free_port,
    listening,
    migrate,
    platform_env,
    ready,
    start,
    stop,
    until,
)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "sigterm-admin-password"
PRICE = 5
FUNDS = 1_000_000
IN_FLIGHT = 24
STOP_AFTER = 100
"""Answers the workers have had when the gateway is sent SIGTERM."""
SHUTDOWN_DELAY = 3
"""The gateway's `server.shutdown_delay` (seconds serving after readiness failed)."""
STARTUP = 120


@pytest.mark.timeout(300)
async def test_a_gateway_stopped_under_load_answers_and_charges_every_call_sent_to_it(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path
) -> None:
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = platform_env(
        database,
        REDIS_URL,
        sockets,
        "sigterm-test-service-secret",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__LOG_LEVEL="info",
        M3O_V1__RATE_LIMITS__FREE="100000",
        M3O_V1__KEY_PEPPER="sigterm-test-key-pepper",
    )
    migrate(env)
    services = [start(name, env, logs) for name in SERVICES]
    gateways: list[Process] = []
    limits = httpx.Limits(
        max_connections=2 * IN_FLIGHT, max_keepalive_connections=IN_FLIGHT, keepalive_expiry=2.0
    )
    try:
        await listening(services, sockets, STARTUP)
        port_a, port_b = free_port(), free_port()
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        gateway_a = start(
            "gateway-a",
            {
                **env,
                "M3O_SERVER__PORT": str(port_a),
                "M3O_SERVER__SHUTDOWN_DELAY": str(SHUTDOWN_DELAY),
            },
            logs,
            "gateway",
        )
        gateways.append(gateway_a)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            await ready(client, gateway_a, url_a, STARTUP)
            api = await admin_api(client, url_a, ADMIN_PASSWORD, STARTUP)
            customer = await paid_helloworld_customer(api, client, url_a, price=PRICE, funds=FUNDS)
            upstream = next(process for process in services if process.name == "helloworld")
            statuses, unready_body = await load_and_stop(
                client, url_a, customer.key, gateway_a, upstream
            )
            exited = await asyncio.to_thread(gateway_a.popen.wait, STOP_SECONDS)
            assert exited in (0, -signal.SIGTERM), gateway_a.output()
            # Every call answered was committed, settled and published before it exited.
            assert redis_db.hlen(HOLDS) == 0, redis_db.hgetall(HOLDS)

            gateway_b = start(
                "gateway-b", {**env, "M3O_SERVER__PORT": str(port_b)}, logs, "gateway"
            )
            gateways.append(gateway_b)
            await ready(client, gateway_b, url_b, STARTUP)
            api = Api(client, url_b, ADMIN_PASSWORD)
            await api.log_in_admin()
            books = Books(api, redis_db, customer.id, price=PRICE, funds=FUNDS)
            served = statuses.count(200)

            async def every_call_booked() -> bool:
                return await books.agree() and books.last is not None and books.last[1] == served

            try:
                await until(every_call_booked, "every answered call charged and counted", 30)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: last read {books.last}, served {served}") from None

        assert statuses == [200] * len(statuses), statuses
        assert len(statuses) > STOP_AFTER, "no call was sent after the SIGTERM"
        assert b'"shutdown":"stopping"' in unready_body, unready_body
        log = gateway_a.output(tail=10_000_000)
        assert "server.draining" in log
    finally:
        problems = stop(gateways) + stop(list(reversed(services)))
        for process in services:
            if process.popen.poll() is None:  # a failure left helloworld frozen
                process.popen.send_signal(signal.SIGCONT)
    assert not problems, "\n".join(problems)
    assert_no_logged_errors([*services, *gateways])


async def load_and_stop(
    client: httpx.AsyncClient, url: str, key: str, gateway: Process, upstream: Process
) -> tuple[list[int], bytes]:
    """Paid calls, ``IN_FLIGHT`` at a time, while ``/readyz`` answers 200; SIGTERM once
    ``STOP_AFTER`` are answered, with the upstream frozen until readiness has failed.
    The status of every call sent (0: no answer), and the body of the failed readiness."""
    statuses: list[int] = []
    routed = True
    answered = asyncio.Event()

    async def worker(n: int) -> None:
        while routed:
            statuses.append(await call_status(client, url, key, f"w{n}"))
            if len(statuses) >= STOP_AFTER:
                answered.set()

    workers = [asyncio.create_task(worker(n)) for n in range(IN_FLIGHT)]
    try:
        await answered.wait()
        upstream.popen.send_signal(signal.SIGSTOP)
        try:
            gateway.popen.send_signal(signal.SIGTERM)
            while True:  # the load balancer's probe
                probe = await client.get(f"{url}/readyz")
                if probe.status_code == 503:
                    routed = False
                    break
                assert probe.status_code == 200, probe.text
                await asyncio.sleep(0.02)
        finally:
            upstream.popen.send_signal(signal.SIGCONT)
        await asyncio.gather(*workers)
    finally:
        routed = False
        for task in workers:
            task.cancel()
    return statuses, probe.content
