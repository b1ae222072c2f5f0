"""Every command that calls a running platform finds it through the one address option."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from m3o.cli import app
from support.fresh_python import lines_printed

ADDRESS_NAMES = {"--address"}


def _commands(command: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every command and group (a group may run itself: `m3o balance`), by its words."""
    yield prefix, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{prefix} {name}".strip())


def test_every_address_option_is_the_one_named_address() -> None:
    commands = dict(_commands(typer.main.get_command(app)))
    with_address: set[str] = set()
    for name, command in commands.items():
        for param in command.params:
            names = set(param.opts) | set(param.secondary_opts)
            if names & {"--address", "--url"} or "url" in (param.name or ""):
                assert names == ADDRESS_NAMES, f"m3o {name}: {sorted(names)}"
                assert param.envvar == "M3O_ADDRESS", f"m3o {name}"
                with_address.add(name)

    calling = {"token", "call", "login", "keys generate", "keys list", "keys revoke"}
    assert calling | {"apis list", "balance", "status"} <= with_address


def test_the_cli_and_the_configuration_load_without_the_database_layer() -> None:
    """Most commands only call the platform over HTTP: starting one imports neither
    SQLAlchemy nor the server's stack (about half of the CLI's start-up time when it did)."""
    code = (
        "import sys\n"
        "import m3o.cli\n"
        "from m3o.runtime.config import build_config\n"
        "build_config({}, {'M3O_V1__RATE_LIMITS__FREE': '5'})\n"
        "print(sorted(m for m in ('sqlalchemy', 'redis', 'uvicorn', 'starlette', 'm3o.platform')"
        " if m in sys.modules))\n"
    )
    assert lines_printed(code) == ["[]"]
