"""``m3o login``, ``m3o keys generate|list|revoke|roll`` and ``m3o apis list``
(``m3o keys import``, an admin's, is in ``cli_keys_import``).

A customer manages their API keys through the public API's key paths (``/v1/api/keys/...``,
``/v1/api/apis/list``) with their customer access token: the one ``m3o login`` stored in the
data directory (mode 0600), or ``--token`` / ``M3O_TOKEN``. Answers are printed as JSON;
an error prints the platform's error JSON and exits 1. The token is never printed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import typer

from m3o.cli_common import ADDRESS, DATA_DIR, fail, json_text, post

__all__ = [
    "LOGIN_FILE",
    "apis_app",
    "customer_token",
    "keys_app",
    "login",
    "read_token",
    "save_token",
]

LOGIN_FILE = "customer-token"
"""The file in the data directory holding the access token of the last ``m3o login``."""

keys_app = typer.Typer(
    help="Your API keys: generate, list, revoke, roll; import M3O's (admin).",
    no_args_is_help=True,
)
apis_app = typer.Typer(help="The APIs published on the platform.", no_args_is_help=True)

TOKEN = typer.Option(
    "",
    "--token",
    envvar="M3O_TOKEN",
    show_default=False,
    help="A customer access token, instead of the one `m3o login` stored.",
)
KEY_ID = typer.Argument(..., help="The key's id, as `m3o keys list` shows it.")
SCOPES = typer.Option(
    ..., "--scopes", "--scope", help="APIs the key may call, or '*'; repeat or comma-separate."
)


def save_token(data_dir: Path, token: str) -> Path:
    """Write the token where ``read_token`` finds it: owner-only (0600), replaced atomically."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOGIN_FILE
    # mkstemp creates the file 0600, so the token is never readable by others, not even
    # briefly; os.replace swaps it in whole.
    descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{LOGIN_FILE}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(token)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_token(data_dir: Path) -> str:
    """The stored token; empty when there is none."""
    try:
        return (data_dir / LOGIN_FILE).read_text().strip()
    except FileNotFoundError:
        return ""


def customer_token(token: str, data_dir: Path) -> str:
    """``token`` when given, else the one ``m3o login`` kept; exits 1 saying how to log in."""
    chosen = token or read_token(data_dir)
    if not chosen:
        raise fail("not logged in: run `m3o login --email <email>`, or pass --token (or M3O_TOKEN)")
    return chosen


def login(
    email: str = typer.Option(..., "--email", help="Your email address."),
    address: str = ADDRESS,
    data_dir: Path = DATA_DIR,
) -> None:
    """Log in as a customer (password prompted, or M3O_PASSWORD); keeps the token for `keys`."""
    password = os.environ.get("M3O_PASSWORD") or typer.prompt("Password", hide_input=True)
    answer = post(address, "", "customers/login", {"email": email, "password": password})
    session = answer.get("token")
    token = session.get("access_token") if isinstance(session, dict) else None
    if not isinstance(token, str) or not token:
        raise fail("the platform answered the login without an access token")
    path = save_token(data_dir, token)
    typer.echo(f"logged in as {email} (token kept in {path})")


def _split(scopes: list[str]) -> list[str]:
    return [scope.strip() for given in scopes for scope in given.split(",") if scope.strip()]


def _project_option(help_start: str) -> Any:
    """``--project``: an admin has no project of their own and must name one."""
    return typer.Option(
        "", "--project", show_default=False, help=f"{help_start}; an admin must name one)."
    )


@keys_app.command("generate")
def keys_generate(  # noqa: PLR0917 - typer passes every option as an argument
    scopes: list[str] = SCOPES,
    description: str = typer.Option(..., "--description", help="What the key is for."),
    project: str = _project_option("The project to own it (default: yours"),
    address: str = ADDRESS,
    token: str = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """Create an API key and print it: it is shown this once."""
    request: dict[str, Any] = {"scopes": _split(scopes), "description": description}
    if project:
        request["project_id"] = project
    answer = post(address, customer_token(token, data_dir), "v1/api/keys/generate", request)
    typer.echo(json_text(answer))
    typer.echo("Store the key now: it cannot be shown again.", err=True)


@keys_app.command("list")
def keys_list(
    project: str = _project_option("Only this project's keys (default: every one of yours"),
    address: str = ADDRESS,
    token: str = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """List your API keys (never the keys themselves)."""
    request = {"project_id": project} if project else {}
    answer = post(address, customer_token(token, data_dir), "v1/api/keys/list", request)
    typer.echo(json_text({"api_keys": answer.get("api_keys", [])}))


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = KEY_ID,
    address: str = ADDRESS,
    token: str = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """Revoke an API key: calls with it are refused from now on."""
    post(address, customer_token(token, data_dir), "v1/api/keys/revoke", {"id": key_id})
    typer.echo(f"revoked {key_id}")


@keys_app.command("roll")
def keys_roll(
    key_id: str = KEY_ID,
    address: str = ADDRESS,
    token: str = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """Give a key a new secret and print it (shown this once): the old one stops working.
    Roll the keys `m3o keys list` shows as legacy (moved from M3O) to get keys in our format."""
    answer = post(address, customer_token(token, data_dir), "v1/api/keys/roll", {"id": key_id})
    typer.echo(json_text(answer))
    typer.echo("Store the key now: it cannot be shown again.", err=True)


@apis_app.command("list")
def apis_list(address: str = ADDRESS, token: str = TOKEN, data_dir: Path = DATA_DIR) -> None:
    """List the names of the published APIs (the scopes a key may have)."""
    answer = post(address, customer_token(token, data_dir), "v1/api/apis/list", {})
    typer.echo(json_text({"names": answer.get("names", [])}))
