"""The ``m3o`` command."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    help="M3O: turn backend services into public, metered, paid APIs.", no_args_is_help=True
)


@app.callback()
def _root() -> None:
    """M3O: turn backend services into public, metered, paid APIs."""


def _source_root() -> Path:
    return Path(__file__).resolve().parent.parent


@app.command()
def gen(
    check: bool = typer.Option(False, "--check", help="Fail if generated code is stale."),
) -> None:
    """Regenerate protobuf code, typed clients and fakes from the .proto files."""
    from m3o import codegen

    src = _source_root()
    if check:
        stale = codegen.stale_files(src)
        for path in stale:
            typer.echo(f"stale: {path}", err=True)
        if stale:
            typer.echo("generated code is stale: run `m3o gen`", err=True)
            raise typer.Exit(1)
        typer.echo("generated code is up to date")
        return
    for path in codegen.generate(src):
        typer.echo(f"wrote {path}")


def main() -> None:
    app()
