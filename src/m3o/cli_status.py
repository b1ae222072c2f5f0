"""``m3o status``: the platform's status page (``/status/call``) as a table for people.

The page answers 500 with the same map as its 200 when a part is unhealthy, not with an
error document, so this command reads the answer itself rather than through
:func:`m3o.cli_common.post`.
"""

from __future__ import annotations

from typing import Any

import orjson
import typer

from m3o.cli_common import ADDRESS, fail

__all__ = ["OK", "status", "status_table"]

OK = "OK"
PATH = "/status/call"


def status_table(statuses: dict[str, str]) -> str:
    """Each part and its state, one a line under a header, then a summary."""
    width = max([len("SERVICE"), *(len(name) for name in statuses)])
    lines = [f"{'SERVICE':<{width}}  STATE"]
    lines += [f"{name:<{width}}  {state}" for name, state in sorted(statuses.items())]
    unhealthy = sum(1 for state in statuses.values() if state != OK)
    if unhealthy:
        lines.append(f"{unhealthy} of {len(statuses)} not OK")
    else:
        lines.append(f"all {len(statuses)} OK")
    return "\n".join(lines)


def _statuses(body: bytes) -> dict[str, str] | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data:
        return None
    if not all(isinstance(value, str) for value in data.values()):
        return None
    return {str(name): value for name, value in data.items()}


def status(
    url: str = ADDRESS,
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the answer."),
) -> None:
    """Show the status of every service, the database, the counter store and the event
    stream; exit 1 if any is not OK."""
    import httpx  # here, not at the top: every other command of `m3o` does without it

    address = url.rstrip("/")
    if not address.startswith(("http://", "https://")):
        raise fail(f"the address must be an http:// or https:// URL, not {url!r}")
    try:
        response = httpx.get(f"{address}{PATH}", timeout=timeout)
    except httpx.TimeoutException:
        raise fail(f"no answer from {address}{PATH} within {timeout} s") from None
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {address}{PATH}: {exc}") from None
    statuses = _statuses(response.content)
    if statuses is None or response.status_code not in (200, 500):
        raise fail(f"{address}{PATH} answered {response.status_code}: {response.text[:200]}")
    typer.echo(status_table(statuses))
    if response.status_code != 200 or any(state != OK for state in statuses.values()):
        raise typer.Exit(1)
