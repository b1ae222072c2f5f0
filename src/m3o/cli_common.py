"""What the ``m3o`` command's modules share: the data directory and platform address
options, the environment they build config from, how a command fails, how JSON is shown,
and the one way they talk HTTP to a running platform (:func:`post`, through
:mod:`m3o.client`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import typer

from m3o.client import DEFAULT_ADDRESS, DEFAULT_TIMEOUT, APIError, ClientError, NetworkError
from m3o.runtime.config import process_environment

__all__ = ["ADDRESS", "DATA_DIR", "admin_token", "environment", "fail", "json_text", "post"]

DATA_DIR = typer.Option(
    Path(".m3o"),
    "--data-dir",
    envvar="M3O_DATA_DIR",
    help="Where the local profile keeps its data (and `m3o login` the access token).",
)
ADDRESS = typer.Option(
    DEFAULT_ADDRESS,
    "--address",
    envvar="M3O_ADDRESS",
    help="Address of the platform's HTTP front.",
)


def environment() -> Mapping[str, str]:
    """The process environment, with ``M3O_ADMIN_PASSWORD`` as ``auth.admin_password``."""
    env = dict(process_environment())
    admin_password = env.get("M3O_ADMIN_PASSWORD")
    if admin_password and "M3O_AUTH__ADMIN_PASSWORD" not in env:
        env["M3O_AUTH__ADMIN_PASSWORD"] = admin_password
    return env


def fail(message: str) -> typer.Exit:
    """Print ``message`` on stderr; the exit (status 1) to raise."""
    typer.echo(message, err=True)
    return typer.Exit(1)


def json_text(value: Any) -> str:
    """``value`` as indented JSON, the way commands print answers."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def post(
    address: str,
    token: str,
    path: str,
    request: Mapping[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    indent_errors: bool = False,
) -> dict[str, Any]:
    """POST ``request`` to ``path`` of the platform at ``address`` (with ``token`` unless
    empty) and return the answer. On failure, print the platform's error JSON (indented
    with ``indent_errors``) or why there was none, and exit 1."""
    from m3o.client import SyncClient  # httpx, for the commands that call the platform

    try:
        with SyncClient(token, address, timeout=timeout) as client:
            return client.post(path, request)
    except APIError as exc:
        raise fail(json_text(exc.to_dict()) if indent_errors else str(exc)) from None
    except NetworkError as exc:  # its message names the URL it could not reach
        raise fail(str(exc)) from None
    except ClientError as exc:
        raise fail(f"{address}: {exc}") from None
    except ValueError as exc:  # a malformed address
        raise fail(str(exc)) from None


def _admin_password(data_dir: Path) -> str:
    password = os.environ.get("M3O_ADMIN_PASSWORD", "")
    if password:
        return password
    stored = data_dir / "admin-password"
    if stored.exists():
        return stored.read_text().strip()
    raise fail("no admin password: set M3O_ADMIN_PASSWORD or run from the data directory")


def admin_token(address: str, data_dir: Path) -> str:
    """An access token of the ``admin`` account, logging in with ``M3O_ADMIN_PASSWORD`` or
    the data directory's ``admin-password``; exits 1 when there is neither."""
    login = {"id": "admin", "secret": _admin_password(data_dir)}
    token: str = post(address, "", "auth/token", login, timeout=10)["token"]["access_token"]
    return token
