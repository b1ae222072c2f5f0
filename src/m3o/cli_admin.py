"""``m3o admin reset`` and ``m3o admin rotate-key``: recovery and upkeep from the machine.

Both work on the database the config names (the data directory's SQLite file by default)
without the running platform and without a token: access to the database is the proof of
authority, since it already allows anything.

- ``reset`` unblocks the admin account (re-creating it when it was deleted), gives it the
  configured password (``auth.admin_password`` / ``M3O_ADMIN_PASSWORD``) or a new one,
  printed once and written to ``<data dir>/admin-password`` (0600), and ends its sessions.
- ``rotate-key`` replaces the data directory's ``key-encryption-key`` file with a new key
  and encrypts the signing keys again under it. Stop ``m3o serve`` first. A key set in
  config is rotated through config instead (see the auth service's README).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer

from m3o.cli_common import DATA_DIR, environment, fail
from m3o.runtime.config import ConfigError

__all__ = ["admin_app"]

admin_app = typer.Typer(
    help="Recover admin access and rotate keys, working on the database directly.",
    no_args_is_help=True,
)

ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name, not a password


def _check_data_dir(data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise fail(f"{data_dir}: no data directory here (use --data-dir)")


@admin_app.command("reset")
def reset(
    account: str = typer.Option("admin", "--id", help="The admin account to recover."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Unblock the admin account (re-creating it if deleted) and set its password."""
    import secrets

    from sqlalchemy.exc import DatabaseError

    from m3o.platform.data_dir import write_private
    from m3o.platform.operator import open_database
    from m3o.services.auth.recovery import AdminReset, reset_admin

    env = environment()

    async def recover() -> tuple[AdminReset, str, bool]:
        async with open_database(data_dir, env) as database:
            configured = database.config.auth.admin_password.get_secret_value()
            password = configured or secrets.token_urlsafe(18)
            done = await reset_admin(
                database.sessions, database.counters, account_id=account, password=password
            )
        return done, password, not configured

    _check_data_dir(data_dir)
    try:
        done, password, generated = asyncio.run(recover())
    except ConfigError as exc:
        raise fail(f"config: {exc}") from None
    except DatabaseError as exc:
        raise fail(f"the database cannot be used: {str(exc.orig).splitlines()[0]}") from None
    state = "re-created" if done.created else "unblocked" if done.was_blocked else "reset"
    typer.echo(f"The account `{done.account_id}` is {state}; its sessions are ended.")
    if not generated:
        typer.echo("It has the configured password (auth.admin_password).")
        return
    typer.echo(f"Its new password is {password}")
    if account == "admin":
        path = data_dir / ADMIN_PASSWORD_FILE
        write_private(path, password + "\n")
        typer.echo(f"(also in {path}, mode 0600)")


@admin_app.command("rotate-key")
def rotate_key(data_dir: Path = DATA_DIR) -> None:
    """Encrypt the signing keys under a new key-encryption key (stop `m3o serve` first)."""
    from sqlalchemy.exc import DatabaseError

    from m3o.platform.data_dir import KEK_FILE, StartupError, key_encryption_key, write_private
    from m3o.platform.operator import open_database
    from m3o.services.auth.key_encryption import KeyEncryption, generate_kek, kek_id, parse_kek
    from m3o.services.auth.signing_keys import seal_stored_keys, sealed_with

    env = environment()
    path = data_dir / KEK_FILE
    staged = path.with_name(KEK_FILE + ".new")

    async def rotate() -> tuple[str, str, int]:
        async with open_database(data_dir, env) as database:
            if database.config.auth.key_encryption_key.get_secret_value():
                raise fail(
                    "auth.key_encryption_key is set in config: rotate it there "
                    "(new key as auth.key_encryption_key, the old one in "
                    "auth.previous_key_encryption_keys, then restart)"
                )
            old = parse_kek(key_encryption_key(path, await sealed_with(database.sessions)))
            new_text = generate_kek()
            new = parse_kek(new_text)
            # The new key is on disk before any row depends on it.
            write_private(staged, new_text + "\n")
            count = await seal_stored_keys(database.sessions, KeyEncryption(new, (old,)))
        os.replace(staged, path)
        return kek_id(old), kek_id(new), count

    _check_data_dir(data_dir)
    try:
        old_id, new_id, count = asyncio.run(rotate())
    except (ConfigError, StartupError) as exc:
        raise fail(str(exc)) from None
    except DatabaseError as exc:
        raise fail(f"the database cannot be used: {str(exc.orig).splitlines()[0]}") from None
    typer.echo(f"Key-encryption key {old_id} replaced by {new_id} in {path}; {count} keys sealed.")
