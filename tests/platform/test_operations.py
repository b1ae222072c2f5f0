"""The operations services each in their own process (platform profile): alerts, mixpanel,
mailchimp, endtoend, admin and status run as `m3o run <service>` beside auth and customers,
and the operator's calls reach them through a gateway.

- `/status/call` reports every one of them OK (and the database, counters and events);
- an alert reported through the platform API is stored by the alerts process and listed;
- `admin/DeleteData` for a customer asks every service holding customer data: those not
  running here are named in the 503 (failures are reported, not swallowed; each waits out
  its call's deadline, as a service restarting would be waited for).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from support.backends import REDIS_URL
from support.platform import (
    CATALOG,
    Api,
    Process,
    assert_no_logged_errors,
    migrate,
    platform_env,
    start,
    stop,
    until,
    until_serving,
)
from support.ports import free_port

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "operations-admin-password"
SERVICES = ("auth", "customers", "alerts", "mixpanel", "mailchimp", "endtoend", "admin", "status")
STARTUP = 120
"""Seconds a process may take to start (nine start at once on a shared machine)."""


@pytest.mark.timeout(300)
async def test_the_operations_services_run_as_their_own_processes(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path
) -> None:
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = platform_env(
        database,
        REDIS_URL,
        sockets,
        "operations-service-secret",
        admin_password=ADMIN_PASSWORD,
        M3O_SERVER__LOG_LEVEL="warning",
        M3O_SERVER__PORT=str(port),
        M3O_STATUS__SERVICES=",".join(SERVICES),
    )
    migrate(env)
    processes: list[Process] = [start(name, env, logs) for name in (*SERVICES, CATALOG)]
    processes.append(start("gateway", env, logs))
    try:
        await until_serving(sockets, SERVICES, url, seconds=STARTUP)
        async with httpx.AsyncClient(timeout=60) as client:

            async def all_ok() -> bool:
                page = await client.get(f"{url}/status/call")
                return page.status_code == 200

            await until(all_ok, "every service OK on the status page", seconds=STARTUP)
            page = (await client.get(f"{url}/status/call")).json()
            assert page == {
                **dict.fromkeys(SERVICES, "OK"),
                "database": "OK",
                "counters": "OK",
                "events": "OK",
            }

            api = Api(client, url, ADMIN_PASSWORD)
            await api.log_in_admin()
            event = {"category": "smoke", "action": "report", "label": "operations"}
            await api.as_admin("/alerts/reportEvent", {"event": event})
            listed = await api.as_admin("/alerts/list", {"category": "smoke"})
            assert [(e["action"], e["label"]) for e in listed["events"]] == [
                ("report", "operations")
            ]

            created = await api.as_admin("/customers/create", {"email": "gone@example.com"})
            tenant = f"micro/{created['customer']['id']}"
            refused = await client.post(
                f"{url}/admin/deleteData",
                json={"tenant_id": tenant},
                headers={"Authorization": f"Bearer {api.admin}"},
            )
            assert refused.status_code == 503, refused.text
            detail = refused.json()["detail"]
            assert detail.startswith("Deleting data failed in: "), detail
            failed = detail.removeprefix("Deleting data failed in: ").split(";")[0].split(", ")
            assert "balance" in failed
            assert "customers" not in failed
            assert "mailchimp" not in failed
    finally:
        problems = stop(list(reversed(processes)))
    assert not problems, "\n".join(problems)
    # Calls to the services not running here fail by design; nothing else may log an error.
    assert_no_logged_errors(p for p in processes if p.name not in ("admin", "gateway"))
