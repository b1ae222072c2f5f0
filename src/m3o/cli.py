"""The ``m3o`` command: run the platform, call it, configure it, generate code."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer

from m3o.cli_admin import admin_app
from m3o.cli_common import ADDRESS, DATA_DIR, admin_token, environment, fail, json_text, post
from m3o.cli_keys import TOKEN, apis_app, customer_token, keys_app, login
from m3o.cli_keys_import import keys_import
from m3o.cli_status import status
from m3o.runtime.config import ConfigError

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="M3O: turn backend services into public, metered, paid APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Read and write the config store.", no_args_is_help=True)
app.add_typer(config_app, name="config")
emails_app = typer.Typer(help="Emails the platform sent or recorded.", no_args_is_help=True)
app.add_typer(emails_app, name="emails")
events_app = typer.Typer(help="Events consumers gave up on: list and replay.", no_args_is_help=True)
app.add_typer(events_app, name="events")
balance_app = typer.Typer(help="Balances and the ledger behind them.")
app.add_typer(balance_app, name="balance")
keys_app.command("import")(keys_import)
app.add_typer(keys_app, name="keys")
app.add_typer(apis_app, name="apis")
app.add_typer(admin_app, name="admin")
app.command()(login)
app.command()(status)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


@app.callback()
def _root() -> None:
    """M3O: turn backend services into public, metered, paid APIs."""


@app.command()
def serve(
    data_dir: Path = DATA_DIR,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
) -> None:
    """Run every service and the HTTP front in one process (the local profile)."""
    from m3o.platform.serve import StartupError, serve_local

    try:
        _run(serve_local(data_dir.absolute(), host, port, environment(), announce=typer.echo))
    except ConfigError as exc:
        raise fail(f"config: {exc}") from None
    except StartupError as exc:
        raise fail(f"m3o serve: {exc}") from None
    except KeyboardInterrupt:
        pass


@app.command()
def run(service: str = typer.Argument(..., help="A service name, or `gateway`.")) -> None:
    """Run one service (gRPC) or the HTTP front as its own process (the platform profile)."""
    from m3o.platform.remote import run_gateway, run_service
    from m3o.platform.service_names import definition as by_name

    env = environment()
    try:
        if service == "gateway":
            _run(run_gateway(env))
        else:
            try:
                definition = by_name(service)
            except KeyError as exc:
                raise fail(str(exc.args[0])) from None
            _run(run_service(definition, env))
    except ConfigError as exc:
        raise fail(f"config: {exc}") from None
    except KeyboardInterrupt:
        pass


@app.command()
def token(url: str = ADDRESS, data_dir: Path = DATA_DIR) -> None:
    """Print a fresh admin access token (for scripts and curl)."""
    typer.echo(admin_token(url, data_dir))


def _call_path(service: str, endpoint: str) -> str:
    """The URL path of ``service``'s ``endpoint``. The v1 service's methods are served at
    their key-management paths (``/v1/<anything else>`` is the public API)."""
    if service.lower() != "v1":
        return "/" + "/".join([service, *endpoint.split(".")])
    from m3o.gateway.v1.keys_api import KEY_PATHS, key_path

    found = key_path(endpoint.rsplit(".", 1)[-1])
    if found is None:
        served = ", ".join(sorted(KEY_PATHS.values()))
        raise fail(f"v1 {endpoint} cannot be called over HTTP; these can: {served}")
    return found


@app.command()
def call(
    service: str = typer.Argument(..., help="The service, e.g. customers."),
    endpoint: str = typer.Argument(..., help="The endpoint, e.g. Read or Customers.Read."),
    request: str = typer.Argument("{}", help="The request as JSON."),
    url: str = ADDRESS,
    data_dir: Path = DATA_DIR,
    bearer: str = typer.Option("", "--token", help="Call with this token instead of admin."),
) -> None:
    """Call any service endpoint; print the JSON answer, or the error and exit 1."""
    try:
        body = orjson.loads(request)
    except orjson.JSONDecodeError:
        raise fail("the request is not valid JSON") from None
    if not isinstance(body, dict):
        raise fail("the request is not a JSON object")
    path = _call_path(service, endpoint)
    auth = bearer or admin_token(url, data_dir)
    typer.echo(json_text(post(url, auth, path, body, indent_errors=True)))


async def _with_config_store(data_dir: Path, action: Any) -> Any:
    from m3o.platform.operator import open_engine
    from m3o.runtime.config.stored import ConfigStore
    from m3o.runtime.store import session_factory

    env = environment()
    async with open_engine(data_dir, env) as engine:
        return await action(ConfigStore(session_factory(engine)), env)


@config_app.command("set")
def config_set(
    path: str = typer.Argument(..., help="micro, or a dotted path such as micro.usage.quotas"),
    value: str = typer.Argument(..., help="The value as JSON (strings may be bare)."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Store a value (validated first; a bad value changes nothing).

    Keys of the reference's config are read as ours where they mean something here; the
    others are dropped and named in one warning."""
    from m3o.runtime.config import parse_value

    async def action(store: Any, _env: Mapping[str, str]) -> tuple[str, ...]:
        ignored: tuple[str, ...] = await store.set(path, parse_value(path, value))
        return ignored

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        ignored = _run(_with_config_store(data_dir, action))
    except ConfigError as exc:
        raise fail(f"config: {exc}") from None
    if ignored:
        typer.echo(
            "warning: config.reference_keys_ignored: keys of the reference's config that mean"
            f" nothing here were not stored: {', '.join(ignored)}",
            err=True,
        )


@config_app.command("get")
def config_get(
    path: str = typer.Argument("micro", help="micro, or a dotted path such as micro.usage"),
    reveal: bool = typer.Option(False, "--reveal", help="Show secrets instead of [redacted]."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Print the value in force at a path (stored value plus environment overrides)."""

    async def action(store: Any, env: Mapping[str, str]) -> Any:
        return await store.show(path, env, reveal=reveal)

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        shown = _run(_with_config_store(data_dir, action))
    except ConfigError as exc:
        raise fail(f"config: {exc}") from None
    typer.echo(json_text(shown))


@emails_app.command("list")
def emails_list(
    limit: int = typer.Option(20, "--limit", help="At most this many, newest first."),
    to: str = typer.Option("", "--to", help="Only emails to this address."),
    status: str = typer.Option("", "--status", help="Only this status (sent, failed, ...)."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Show recent emails: time, recipient, subject and plain-text body (the local outbox)."""
    from m3o.platform.operator import open_database
    from m3o.services.emails.outbox import format_outbox, list_outbox

    async def fetch() -> str:
        async with open_database(data_dir, environment()) as database:
            emails = await list_outbox(database.sessions, limit=limit, to=to, status=status)
        return format_outbox(emails)

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        typer.echo(_run(fetch()))
    except ValueError as exc:
        raise fail(str(exc)) from None


@balance_app.callback(invoke_without_command=True)
def balance(
    context: typer.Context,
    customer: str = typer.Option(
        "", "--customer", show_default=False, help="Another customer's (admins only)."
    ),
    limit: int = typer.Option(20, "--limit", help="Ledger entries to show, oldest first."),
    offset: int = typer.Option(0, "--offset", help="Ledger entries to skip."),
    address: str = ADDRESS,
    token: str = TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """Your balance and the ledger entries behind it (credits, charges, top-ups)."""
    if context.invoked_subcommand is not None:
        return
    chosen = customer_token(token, data_dir)
    current = post(address, chosen, "balance/current", {"customer_id": customer})
    listed = post(
        address,
        chosen,
        "balance/listAdjustments",
        {"customer_id": customer, "limit": limit, "offset": offset},
    )
    shown = {
        "current_balance": int(current.get("current_balance", 0)),
        "adjustments": listed.get("adjustments", []),
    }
    typer.echo(json_text(shown))


@balance_app.command("check")
def balance_check(data_dir: Path = DATA_DIR) -> None:
    """Recompute every balance from the ledger and report any difference (exit 1 if any)."""
    from m3o.platform.operator import open_database
    from m3o.services.balance.check import check_balances

    async def check() -> list[dict[str, Any]]:
        async with open_database(data_dir, environment()) as database:
            found = await check_balances(database.sessions, database.counters)
        return [
            {
                "customer_id": d.customer_id,
                "ledger": d.ledger,
                "stored": d.stored,
                "pending": d.pending,
                "hot": d.hot,
                "expected_hot": d.expected_hot,
            }
            for d in found
        ]

    data_dir.mkdir(parents=True, exist_ok=True)
    differences = _run(check())
    if differences:
        typer.echo(json_text(differences))
        raise typer.Exit(1)
    typer.echo("every balance equals its ledger")


@events_app.command("dead-letters")
def events_dead_letters(
    topic: str = typer.Option("", "--topic", help="Only this topic."),
    group: str = typer.Option("", "--group", help="Only this consumer group."),
    replayed: bool = typer.Option(False, "--replayed", help="Include replayed ones."),
    limit: int = typer.Option(100, "--limit", help="At most this many."),
    data_dir: Path = DATA_DIR,
) -> None:
    """List events that consumers gave up on after their last attempt."""
    from m3o.platform.operator import open_event_bus

    async def fetch() -> list[dict[str, Any]]:
        async with open_event_bus(data_dir, environment()) as bus:
            letters = await bus.dead_letters(
                topic=topic or None, group=group or None, include_replayed=replayed, limit=limit
            )
        return [
            {
                "id": letter.id,
                "event_id": letter.event_id,
                "topic": letter.topic,
                "group": letter.group,
                "type": letter.type_name,
                "attempts": letter.attempts,
                "failed_at": letter.failed_at.isoformat(),
                "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
                "error": letter.error.strip().splitlines()[-1] if letter.error else "",
            }
            for letter in letters
        ]

    data_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(json_text(_run(fetch())))


@events_app.command("replay")
def events_replay(
    dead_letter_id: str = typer.Argument(..., help="The id `m3o events dead-letters` shows."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Send a dead-lettered event back to its consumer group."""
    from m3o.platform.operator import open_event_bus
    from m3o.runtime.errors import M3OError

    async def replay() -> None:
        async with open_event_bus(data_dir, environment()) as bus:
            await bus.replay_dead_letter(dead_letter_id)

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _run(replay())
    except M3OError as exc:
        raise fail(exc.to_json().decode()) from None
    typer.echo("replayed")


@app.command()
def migrate(
    data_dir: Path = DATA_DIR,
    revision: str = typer.Option(
        "", "--revision", help="Create a new migration with this message instead (development)."
    ),
) -> None:
    """Apply database migrations (the database from config, or the local SQLite file)."""
    from m3o.platform.operator import open_engine
    from m3o.runtime.store.migrate import create_revision

    data_dir.mkdir(parents=True, exist_ok=True)

    async def apply() -> None:
        async with open_engine(data_dir, environment()) as engine:
            if revision:
                await create_revision(engine, revision)

    try:
        _run(apply())
    except ConfigError as exc:
        raise fail(f"config: {exc}") from None
    typer.echo("migrations applied")


@app.command()
def gen(
    check: bool = typer.Option(False, "--check", help="Fail if generated code is stale."),
) -> None:
    """Regenerate protobuf code, typed clients and fakes from the .proto files."""
    from m3o import codegen

    src = Path(__file__).resolve().parent.parent
    if check:
        stale = codegen.stale_files(src)
        for path in stale:
            typer.echo(f"stale: {path}", err=True)
        if stale:
            raise fail("generated code is stale: run `m3o gen`")
        typer.echo("generated code is up to date")
        return
    for path in codegen.generate(src):
        typer.echo(f"wrote {path}")


def main() -> None:
    sys.exit(app())
