"""`m3o login`, `m3o keys ...` and `m3o apis list` against the fake public API."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import orjson
from typer.testing import CliRunner, Result

from client.fake_platform import (
    BALANCE,
    CUSTOMER_TOKEN,
    EMAIL,
    LEDGER,
    PASSWORD,
    UNAUTHORIZED,
    FakePlatform,
)
from m3o.cli import app
from m3o.cli_keys import LOGIN_FILE, read_token, save_token


def m3o(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    # No M3O_* variable of the developer's shell may leak into the command.
    clean = {"M3O_TOKEN": "", "M3O_PASSWORD": "", "M3O_ADDRESS": ""}
    return CliRunner().invoke(app, list(args), env={**clean, **(env or {})}, input=stdin)


def logged_in(platform: FakePlatform, data_dir: Path) -> list[str]:
    """The options every key command needs, after a login."""
    options = ["--address", platform.address, "--data-dir", str(data_dir)]
    result = m3o("login", "--email", EMAIL, *options, env={"M3O_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    return options


def test_login_stores_the_access_token_owner_only_and_never_prints_it(
    platform: FakePlatform, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    result = m3o(
        "login",
        "--email",
        EMAIL,
        "--address",
        platform.address,
        "--data-dir",
        str(data_dir),
        env={"M3O_PASSWORD": PASSWORD},
    )

    assert result.exit_code == 0, result.output
    assert CUSTOMER_TOKEN not in result.output
    assert EMAIL in result.stdout
    stored = data_dir / LOGIN_FILE
    assert stored.read_text() == CUSTOMER_TOKEN
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    [received] = platform.received
    assert received.path == "/customers/login"
    assert received.body == {"email": EMAIL, "password": PASSWORD}
    assert received.authorization == ""


def test_login_prompts_for_the_password_without_echoing_it(
    platform: FakePlatform, tmp_path: Path
) -> None:
    result = m3o(
        "login",
        "--email",
        EMAIL,
        "--address",
        platform.address,
        "--data-dir",
        str(tmp_path),
        stdin=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert platform.received[0].body == {"email": EMAIL, "password": PASSWORD}
    assert read_token(tmp_path) == CUSTOMER_TOKEN


def test_login_with_a_wrong_password_prints_the_error_and_stores_nothing(
    platform: FakePlatform, tmp_path: Path
) -> None:
    result = m3o(
        "login",
        "--email",
        EMAIL,
        "--address",
        platform.address,
        "--data-dir",
        str(tmp_path),
        env={"M3O_PASSWORD": "wrong"},
    )

    assert result.exit_code == 1
    assert orjson.loads(result.stderr) == {
        "id": "customers.login",
        "code": 401,
        "detail": "Invalid email or password",
        "status": "Unauthorized",
    }
    assert not (tmp_path / LOGIN_FILE).exists()


def test_a_second_login_replaces_the_token_and_keeps_it_owner_only(tmp_path: Path) -> None:
    save_token(tmp_path, "first")
    (tmp_path / LOGIN_FILE).chmod(0o644)

    save_token(tmp_path, "second")

    assert read_token(tmp_path) == "second"
    assert stat.S_IMODE((tmp_path / LOGIN_FILE).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [LOGIN_FILE]


def test_generate_list_revoke_journey(platform: FakePlatform, tmp_path: Path) -> None:
    options = logged_in(platform, tmp_path)

    generated = m3o(
        "keys", "generate", "--scopes", "helloworld,streams", "--description", "my app", *options
    )
    assert generated.exit_code == 0, generated.output
    assert orjson.loads(generated.stdout) == {
        "api_key": "m3o_generated_key-1",
        "api_key_id": "key-1",
    }
    assert "cannot be shown again" in generated.stderr
    request = platform.received[-1]
    assert request.path == "/v1/api/keys/generate"
    assert request.authorization == f"Bearer {CUSTOMER_TOKEN}"
    assert request.body == {"scopes": ["helloworld", "streams"], "description": "my app"}

    listed = m3o("keys", "list", *options)
    assert listed.exit_code == 0, listed.output
    [key] = orjson.loads(listed.stdout)["api_keys"]
    assert (key["id"], key["description"], key["scopes"]) == (
        "key-1",
        "my app",
        ["helloworld", "streams"],
    )
    assert platform.received[-1].path == "/v1/api/keys/list"

    revoked = m3o("keys", "revoke", "key-1", *options)
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.strip() == "revoked key-1"
    assert platform.received[-1].body == {"id": "key-1"}

    empty = m3o("keys", "list", *options)
    assert orjson.loads(empty.stdout) == {"api_keys": []}
    assert CUSTOMER_TOKEN not in generated.output + listed.output + revoked.output


def test_generate_takes_repeated_scopes_and_a_project(
    platform: FakePlatform, tmp_path: Path
) -> None:
    options = logged_in(platform, tmp_path)

    result = m3o(
        "keys",
        "generate",
        "--scopes",
        "helloworld",
        "--scope",
        "*",
        "--description",
        "d",
        "--project",
        "proj-1",
        *options,
    )

    assert result.exit_code == 0, result.output
    assert platform.received[-1].body == {
        "scopes": ["helloworld", "*"],
        "description": "d",
        "project_id": "proj-1",
    }


def test_list_takes_a_project(platform: FakePlatform, tmp_path: Path) -> None:
    options = logged_in(platform, tmp_path)

    result = m3o("keys", "list", "--project", "proj-1", *options)

    assert result.exit_code == 0, result.output
    assert platform.received[-1].path == "/v1/api/keys/list"
    assert platform.received[-1].body == {"project_id": "proj-1"}


def test_refused_scopes_print_the_error_json_and_exit_1(
    platform: FakePlatform, tmp_path: Path
) -> None:
    options = logged_in(platform, tmp_path)

    result = m3o("keys", "generate", "--scopes", "secret", "--description", "d", *options)

    assert result.exit_code == 1
    assert orjson.loads(result.stderr) == {
        "id": "v1.GenerateKey",
        "code": 403,
        "detail": "Not allowed to generate a key with requested scopes",
        "status": "Forbidden",
    }
    assert platform.keys == {}


def test_revoking_an_unknown_key_is_not_found(platform: FakePlatform, tmp_path: Path) -> None:
    options = logged_in(platform, tmp_path)

    result = m3o("keys", "revoke", "key-404", *options)

    assert result.exit_code == 1
    assert orjson.loads(result.stderr)["detail"] == "Not found"


def test_apis_list_prints_the_published_names(platform: FakePlatform, tmp_path: Path) -> None:
    options = logged_in(platform, tmp_path)

    result = m3o("apis", "list", *options)

    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"names": ["helloworld", "streams"]}
    assert platform.received[-1].path == "/v1/api/apis/list"


def test_token_option_and_environment_override_the_stored_token(
    platform: FakePlatform, tmp_path: Path
) -> None:
    save_token(tmp_path, "stale-token")
    options = ["--address", platform.address, "--data-dir", str(tmp_path)]

    by_option = m3o("apis", "list", "--token", CUSTOMER_TOKEN, *options)
    by_env = m3o("apis", "list", *options, env={"M3O_TOKEN": CUSTOMER_TOKEN})
    stored = m3o("apis", "list", *options)

    assert (by_option.exit_code, by_env.exit_code) == (0, 0)
    assert [r.authorization for r in platform.received] == [
        f"Bearer {CUSTOMER_TOKEN}",
        f"Bearer {CUSTOMER_TOKEN}",
        "Bearer stale-token",
    ]
    assert stored.exit_code == 1
    assert orjson.loads(stored.stderr) == UNAUTHORIZED


def test_address_comes_from_the_environment(platform: FakePlatform, tmp_path: Path) -> None:
    result = m3o(
        "apis",
        "list",
        "--token",
        CUSTOMER_TOKEN,
        "--data-dir",
        str(tmp_path),
        env={"M3O_ADDRESS": platform.address},
    )

    assert result.exit_code == 0, result.output
    assert len(platform.received) == 1


def test_without_a_token_the_command_says_how_to_log_in(
    platform: FakePlatform, tmp_path: Path
) -> None:
    result = m3o("keys", "list", "--address", platform.address, "--data-dir", str(tmp_path))

    assert result.exit_code == 1
    assert "m3o login" in result.stderr
    assert platform.received == []


def test_unreachable_platform_exits_1_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = m3o(
        "keys",
        "list",
        "--token",
        CUSTOMER_TOKEN,
        "--address",
        f"http://127.0.0.1:{port}",
        "--data-dir",
        str(tmp_path),
    )

    assert result.exit_code == 1
    assert "cannot reach" in result.stderr
    assert CUSTOMER_TOKEN not in result.output


def test_malformed_address_exits_1() -> None:
    result = m3o("apis", "list", "--token", "t", "--address", "localhost:8080")

    assert result.exit_code == 1
    assert "http://" in result.stderr


def test_balance_shows_the_balance_and_the_ledger_entries(
    platform: FakePlatform, tmp_path: Path
) -> None:
    options = logged_in(platform, tmp_path)

    shown = m3o("balance", *options)
    paged = m3o("balance", "--limit", "1", "--offset", "1", *options)

    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.stdout) == {"current_balance": BALANCE, "adjustments": LEDGER}
    assert orjson.loads(paged.stdout)["adjustments"] == LEDGER[1:]
    asked = [(r.path, r.body) for r in platform.received[1:3]]
    assert asked == [
        ("/balance/current", {"customer_id": ""}),
        ("/balance/listAdjustments", {"customer_id": "", "limit": 20, "offset": 0}),
    ]


def test_balance_of_another_customer_prints_the_refusal_and_exits_1(
    platform: FakePlatform, tmp_path: Path
) -> None:
    options = logged_in(platform, tmp_path)

    refused = m3o("balance", "--customer", "someone-else", *options)

    assert refused.exit_code == 1
    assert orjson.loads(refused.stderr)["code"] == 403


def test_balance_without_a_token_says_how_to_log_in(platform: FakePlatform, tmp_path: Path) -> None:
    result = m3o("balance", "--address", platform.address, "--data-dir", str(tmp_path))

    assert result.exit_code == 1
    assert "m3o login" in result.stderr
    assert platform.received == []
