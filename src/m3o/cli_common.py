"""What the ``m3o`` command's modules share: the data directory option, the environment
they build config from, and how a command fails."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import typer

from m3o.runtime.config import process_environment

__all__ = ["DATA_DIR", "environment", "fail"]

DATA_DIR = typer.Option(
    Path(".m3o"),
    "--data-dir",
    envvar="M3O_DATA_DIR",
    help="Where the local profile keeps its data.",
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
