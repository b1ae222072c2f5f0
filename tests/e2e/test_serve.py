"""`m3o serve` as a person runs it: a subprocess on a free port, driven over HTTP and the CLI."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert

from e2e.serving import ADMIN_PASSWORD, M3O, eventually, serve
from m3o.platform.operator import open_database
from m3o.platform.services import SERVICES
from m3o.runtime.config.sections import StatusConfig
from m3o.runtime.store import transaction
from m3o.services.auth import tables as auth_tables
from support.ports import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Served:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*M3O, *args, "--address", self.url, "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def admin_token(self) -> str:
        response = httpx.post(
            f"{self.url}/auth/token", json={"id": "admin", "secret": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]["access_token"]
        return token


def start(data_dir: Path, env: dict[str, str]) -> Served:
    platform = serve(data_dir, env, stdout=subprocess.PIPE)
    return Served(platform.url, data_dir, platform.process, env)


def stop(served: Served) -> tuple[int, str, str]:
    served.process.send_signal(signal.SIGINT)
    out, err = served.process.communicate(timeout=30)
    return served.process.returncode, out, err


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `m3o serve` for the tests that only call it (each uses data of its own)."""
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD}
    running = start(tmp_path_factory.mktemp("served") / "data", env)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.communicate()


def test_admin_creates_a_customer_who_logs_in_and_anonymous_reads_are_refused(
    served: Served,
) -> None:
    admin = {"Authorization": f"Bearer {served.admin_token()}"}
    created = httpx.post(
        f"{served.url}/customers/create", json={"email": " Ann@Example.com "}, headers=admin
    )
    assert created.status_code == 200, created.text
    customer = created.json()["customer"]
    assert customer["email"] == "ann@example.com"
    assert customer["status"] == "unverified"
    assert isinstance(customer["created"], int)

    anonymous = httpx.post(f"{served.url}/customers/read", json={"id": customer["id"]})
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "id": "customers.read",
        "code": 401,
        "detail": "Unauthorized",
        "status": "Unauthorized",
    }

    account = httpx.post(
        f"{served.url}/auth/generate",
        json={
            "id": customer["id"],
            "type": "customer",
            "scopes": ["customer"],
            "name": customer["email"],
            "secret": "correct horse battery",
        },
        headers=admin,
    )
    assert account.status_code == 200, account.text
    verified = httpx.post(
        f"{served.url}/customers/markVerified", json={"id": customer["id"]}, headers=admin
    )
    assert verified.status_code == 200, verified.text

    login = httpx.post(
        f"{served.url}/customers/login",
        json={"email": "ann@example.com", "password": "correct horse battery"},
    )
    assert login.status_code == 200, login.text
    session = login.json()
    assert session["customer_id"] == customer["id"]
    assert session["namespace"] == "micro"
    own = {"Authorization": f"Bearer {session['token']['access_token']}"}

    read = httpx.post(f"{served.url}/Customers/Read", json={"id": customer["id"]}, headers=own)
    assert read.status_code == 200, read.text
    assert read.json()["customer"]["status"] == "verified"

    someone_else = httpx.post(
        f"{served.url}/customers/read", json={"id": "someone-else"}, headers=own
    )
    assert someone_else.status_code == 403

    wrong = httpx.post(
        f"{served.url}/customers/login",
        json={"email": "ann@example.com", "password": "wrong password"},
    )
    assert wrong.status_code == 401


def _list_rules_error(code: int, reason: str) -> dict[str, object]:
    return {"id": "auth.listrules", "code": code, "detail": reason, "status": reason}


def test_the_access_rules_are_read_by_admins_only_over_http(served: Served) -> None:
    admin = {"Authorization": f"Bearer {served.admin_token()}"}
    anonymous = httpx.post(f"{served.url}/auth/listRules", json={})
    assert anonymous.status_code == 401
    assert anonymous.json() == _list_rules_error(401, "Unauthorized")
    generated = httpx.post(
        f"{served.url}/auth/generate",
        json={"id": "rules-reader", "type": "customer", "scopes": ["customer"], "secret": "pw"},
        headers=admin,
    )
    assert generated.status_code == 200, generated.text
    issued = httpx.post(f"{served.url}/auth/token", json={"id": "rules-reader", "secret": "pw"})
    customer = {"Authorization": f"Bearer {issued.json()['token']['access_token']}"}

    refused = httpx.post(f"{served.url}/auth/listRules", json={}, headers=customer)
    listed = httpx.post(f"{served.url}/auth/listRules", json={}, headers=admin)

    assert refused.status_code == 403
    assert refused.json() == _list_rules_error(403, "Forbidden")
    assert listed.status_code == 200, listed.text
    assert "default-any-account" in {rule["id"] for rule in listed.json()["rules"]}


def test_bad_input_gets_documented_errors_never_a_500(served: Served) -> None:
    admin = {"Authorization": f"Bearer {served.admin_token()}"}
    cases = [
        ("/customers/create", b"{not json", 400),
        ("/customers/create", b"[1, 2]", 400),
        ("/customers/create", b'{"email": ""}', 400),
        ("/customers/create", b'{"email": "no-at-sign"}', 400),
        ("/customers/read", b"{}", 400),
        ("/customers/read", b'{"id": "missing"}', 404),
        ("/customers/update", b'{"customer": {"id": "x", "status": "weird"}}', 400),
        ("/customers/list", b'{"limit": -1}', 400),
        ("/customers/nosuchendpoint", b"{}", 404),
        ("/nosuchservice/call", b"{}", 404),
        ("/auth/token", b'{"id": "admin", "secret": "wrong"}', 401),
        ("/customers/create", b'{"email": 5}', 400),
    ]
    for path, body, status in cases:
        response = httpx.post(
            f"{served.url}{path}",
            content=body,
            headers={**admin, "Content-Type": "application/json"},
        )
        assert response.status_code == status, (path, body, response.text)
        error = response.json()
        assert set(error) == {"id", "code", "detail", "status"}
        assert error["code"] == status


def test_cli_token_call_and_status_work_against_the_running_platform(served: Served) -> None:
    token = served.cli("token")
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2  # a JWT

    created = served.cli("call", "customers", "Create", '{"email":"cli@example.com"}')
    assert created.returncode == 0, created.stderr
    assert '"email": "cli@example.com"' in created.stdout

    missing = served.cli("call", "customers", "Read", '{"email":"nobody@example.com"}')
    assert missing.returncode == 1
    assert '"code": 404' in missing.stderr

    # Out of the box every service the platform defines (of status.services) is OK.
    page = httpx.get(f"{served.url}/status/call")
    assert page.status_code == 200, page.text
    defined = {s.name for s in SERVICES} & set(StatusConfig().services)
    assert page.json() == dict.fromkeys([*defined, "database", "counters", "events"], "OK")
    status = subprocess.run(
        [*M3O, "status", "--address", served.url],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE"]
    assert dict(line.split() for line in lines[1:-1]) == page.json()
    assert lines[-1] == f"all {len(page.json())} OK"


def _readme_python_example() -> str:
    """The README's one Python block that uses ``m3o.client``."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    [example] = [block for block in blocks if "from m3o.client import" in block]
    return example


def _funded_key(served: Served, email: str) -> str:
    admin = {"Authorization": f"Bearer {served.admin_token()}"}

    def ok(path: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, Any]:
        response = httpx.post(f"{served.url}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    customer = ok("/customers/create", {"email": email}, admin)["customer"]
    account = {"id": customer["id"], "type": "customer", "scopes": ["customer"], "secret": "pw"}
    ok("/auth/generate", {**account, "name": email}, admin)
    ok("/customers/markVerified", {"id": customer["id"]}, admin)
    funds = {"customer_id": customer["id"], "delta": 1_000_000, "idempotency_key": email}
    ok("/balance/increment", {**funds, "reference": "README example"}, admin)
    issued = ok("/auth/token", {"id": customer["id"], "secret": "pw"}, {})
    own = {"Authorization": f"Bearer {issued['token']['access_token']}"}
    key: str = ok(
        "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": "readme"}, own
    )["api_key"]
    return key


def test_the_readme_python_example_runs_as_written(served: Served, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text(_readme_python_example())
    key = _funded_key(served, "readme@example.com")

    ran = subprocess.run(
        [sys.executable, str(script)],
        env={**served.env, "M3O_API_KEY": key, "M3O_ADDRESS": served.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == str({"message": "Hello Alice"})
    assert len(lines) == 4
    assert all("Alice" in line for line in lines[1:])


def test_the_cli_finds_the_platform_by_address_option_or_environment(served: Served) -> None:
    env = {k: v for k, v in served.env.items() if k != "M3O_ADDRESS"}
    data_dir = str(served.data_dir)
    by_option = [*M3O, "token", "--address", served.url, "--data-dir", data_dir]
    by_env = [*M3O, "token", "--data-dir", data_dir]

    for command, extra in ((by_option, {}), (by_env, {"M3O_ADDRESS": served.url})):
        ran = subprocess.run(
            command,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.count(".") == 2  # a JWT from the platform on its own port


def test_probes_metrics_openapi_and_the_end_to_end_check_are_served(served: Served) -> None:
    assert httpx.get(f"{served.url}/readyz").status_code == 200
    before = httpx.get(f"{served.url}/endtoend/check")
    assert before.status_code == 500
    assert before.json()["detail"] == "No recent successful check"
    admin = {"Authorization": f"Bearer {served.admin_token()}"}
    started = httpx.post(f"{served.url}/endtoend/runCheck", json={}, headers=admin)
    assert started.status_code == 200, started.text
    assert started.json()["started"] is True
    # The run signs a customer up through this front, reads the code from the outbox and
    # calls helloworld's example with a key of its own: a few seconds on a quiet machine.
    checked = eventually(
        lambda: httpx.get(f"{served.url}/endtoend/check").status_code == 200,
        "the end-to-end check passing",
        seconds=120,
    )
    assert checked
    assert httpx.post(f"{served.url}/endtoend/check").json() == {}
    httpx.post(f"{served.url}/customers/read", json={})
    metrics = httpx.get(f"{served.url}/metrics")
    assert metrics.status_code == 200
    assert "customers" in metrics.text
    spec = httpx.get(f"{served.url}/openapi.json").json()
    assert "/customers/Create" in spec["paths"]
    assert "/auth/Token" in spec["paths"]


def test_ctrl_c_stops_cleanly_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    env = {**os.environ}
    env.pop("M3O_ADMIN_PASSWORD", None)
    first = start(tmp_path / "data", env)
    password_file = tmp_path / "data" / "admin-password"
    assert password_file.exists()
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    password = password_file.read_text().strip()
    env["M3O_ADMIN_PASSWORD"] = password
    created = first.cli("call", "customers", "Create", '{"email":"keep@example.com"}')
    assert created.returncode == 0, created.stderr
    code, out, err = stop(first)
    assert code == 0, err
    assert password in out  # shown once to the operator ...
    assert password not in err  # ... and never logged
    # ... with where the console is and where signup codes go when no email leaves.
    assert f"Open {first.url}/ in a browser for the console." in out
    assert "`m3o emails list --to <address>` shows them" in out

    second = start(tmp_path / "data", env)
    try:
        read = second.cli("call", "customers", "Read", '{"email":"keep@example.com"}')
        assert read.returncode == 0, read.stderr
        code, out, err = stop(second)
        assert code == 0, err
        assert password not in out  # not generated again
    finally:
        if second.process.poll() is None:
            second.process.kill()


# The data directory: private, checked, and the signing key encrypted in it.


def serve_fails(data_dir: Path, env: dict[str, str] | None = None) -> str:
    """Run `m3o serve` expecting it to stop at once; returns its one line on stderr."""
    completed = subprocess.run(
        [*M3O, "serve", "--data-dir", str(data_dir), "--port", str(free_port())],
        env=env or {**os.environ},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0, completed.stdout
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    return lines[0]


def test_a_data_dir_that_is_a_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.write_text("not a directory")
    line = serve_fails(data_dir)
    assert str(data_dir) in line
    assert "not a directory" in line


def test_a_read_only_data_dir_stops_serve_with_one_line(tmp_path: Path) -> None:
    # Decided from the permission bits, so it holds for root too (who could write anyway).
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    try:
        line = serve_fails(data_dir)
    finally:
        data_dir.chmod(0o700)
    assert str(data_dir) in line
    assert "read-only" in line
    assert list(data_dir.iterdir()) == []


def test_a_corrupt_database_stops_serve_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "m3o.db"
    garbage = os.urandom(8192)
    database.write_bytes(garbage)
    line = serve_fails(data_dir)
    assert str(database) in line
    assert "not an SQLite database" in line
    assert database.read_bytes() == garbage


def test_a_second_serve_on_the_same_data_dir_stops_with_one_line(tmp_path: Path) -> None:
    """The running one keeps the counters of calls in memory: a second would serve from
    stale ones, so it is refused and the first goes on."""
    data_dir = tmp_path / "data"
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD}
    served = start(data_dir, env)
    try:
        line = serve_fails(data_dir)
        assert str(data_dir / "m3o.db") in line
        assert "in use by another `m3o serve`" in line
        assert served.admin_token()
    finally:
        code, _, err = stop(served)
    assert code == 0, err
    again = start(data_dir, env)  # the lock went with the first
    try:
        assert again.admin_token()
    finally:
        stop(again)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_data_dir_is_private_and_holds_no_private_key_in_clear(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # as an older version left it
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD}
    served = start(data_dir, env)
    try:
        assert served.admin_token()
        assert mode(data_dir) == 0o700
        files = [p for p in data_dir.iterdir() if p.name.startswith("m3o.db")]
        assert data_dir / "m3o.db" in files
        for path in [*files, data_dir / "key-encryption-key"]:
            assert mode(path) == 0o600, path
        for path in files:
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    finally:
        code, _, err = stop(served)
    assert code == 0, err
    assert b"PRIVATE KEY" not in (data_dir / "m3o.db").read_bytes()


def public_keys(url: str) -> list[dict[str, str]]:
    answer = httpx.post(f"{url}/auth/publicKeys", json={})
    assert answer.status_code == 200, answer.text
    keys: list[dict[str, str]] = orjson.loads(answer.json()["jwks"])["keys"]
    return keys


def test_a_wrong_or_missing_key_encryption_key_stops_serve_and_changes_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "M3O_ADMIN_PASSWORD": ADMIN_PASSWORD}
    first = start(data_dir, env)
    kids = [k["kid"] for k in public_keys(first.url)]
    code, _, err = stop(first)
    assert code == 0, err
    key_file = data_dir / "key-encryption-key"
    right = key_file.read_text()

    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    line = serve_fails(data_dir, env)
    assert str(key_file) in line
    assert "encrypted with" in line
    assert right.strip() not in line

    key_file.unlink()
    line = serve_fails(data_dir, env)
    assert str(key_file) in line
    assert "missing" in line
    assert not key_file.exists()

    key_file.write_text(right)
    again = start(data_dir, env)
    try:
        assert [k["kid"] for k in public_keys(again.url)] == kids
        assert again.cli("token").returncode == 0
    finally:
        stop(again)


# The admin cannot lock itself out; `m3o admin reset` recovers a lockout anyway.


async def _block_directly(data_dir: Path, account_id: str) -> None:
    """A lockout as an older version let it happen: the block written to the database."""
    async with (
        open_database(data_dir, {}) as database,
        transaction(database.sessions) as session,
    ):
        blocked = {"account_id": account_id, "created": datetime.now(UTC)}
        await session.execute(insert(auth_tables.blocks).values(**blocked))


def test_admin_cannot_block_itself_and_admin_reset_recovers_a_lockout(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ}
    env.pop("M3O_ADMIN_PASSWORD", None)
    served = start(data_dir, env)
    first_password = (data_dir / "admin-password").read_text().strip()
    token = served.cli("token")
    assert token.returncode == 0, token.stderr
    headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
    refused = httpx.post(f"{served.url}/auth/Block", json={"id": "admin"}, headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"] == "You cannot block your own account"
    still = httpx.post(f"{served.url}/auth/list", json={}, headers=headers)
    assert still.status_code == 200, still.text
    stop(served)

    asyncio.run(_block_directly(data_dir, "admin"))
    locked = start(data_dir, env)
    try:
        assert locked.cli("token").returncode == 1
    finally:
        stop(locked)

    reset = subprocess.run(
        [*M3O, "admin", "reset", "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reset.returncode == 0, reset.stderr
    new_password = (data_dir / "admin-password").read_text().strip()
    assert new_password != first_password
    assert new_password in reset.stdout
    assert mode(data_dir / "admin-password") == 0o600

    recovered = start(data_dir, env)
    try:
        token = recovered.cli("token")
        assert token.returncode == 0, token.stderr
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        listed = httpx.post(f"{recovered.url}/auth/list", json={}, headers=headers)
        assert listed.status_code == 200, listed.text
    finally:
        stop(recovered)
