"""``m3o keys import FILE``: move M3O's API keys here, so its customers' keys keep working.

The file is JSON lines, one key a line (blank lines are skipped)::

    {"id": "...", "owner": "<customer>", "project": "<project>", "scopes": ["*"],
     "description": "...", "created": 1650000000, "hash": "<hex sha256 of the key>"}

M3O's own v1 store records are accepted as they are too: ``apiKey`` is the hash,
``userID`` the project, ``statusMessage`` and ``lastSeen`` are read, ``accID``,
``namespace`` and ``token`` are ignored. ``created`` and ``last_seen`` are unix seconds or
ISO 8601 times. ``status`` (``active`` / ``blocked``) and ``status_message`` keep a blocked
key blocked.

All or nothing: every line is read and checked first (here, then by the platform, with
``check_only``), and any bad line is reported, naming it, before anything is imported.
Then the keys go in batches (``ImportKeys``, admin): keys already imported (same id) are
skipped, so if a batch fails half way, running the same command again finishes the job;
keys revoked here since an earlier import are not brought back. It prints
``{"imported", "already_present", "revoked"}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer

from m3o.cli_common import ADDRESS, DATA_DIR, admin_token, fail, json_text
from m3o.client import APIError, ClientError

if TYPE_CHECKING:
    from m3o.client import SyncClient

__all__ = ["keys_import", "read_key_file"]

IMPORT_PATH = "v1/api/keys/import"
BATCH = 25
"""Keys per request: each new key's auth account costs a password hash on the platform."""
MAX_BATCH = 1000
TIMEOUT = 120.0

_TEXT_FIELDS = {
    "id": ("id",),
    "hash": ("hash", "apiKey"),
    "project": ("project", "userID"),
    "owner": ("owner",),
    "description": ("description",),
    "status": ("status",),
    "status_message": ("status_message", "statusMessage"),
}
_TIME_FIELDS = {"created": ("created",), "last_seen": ("last_seen", "lastSeen")}


class BadLine(ValueError):
    pass


def _first(row: dict[str, Any], names: Sequence[str]) -> Any:
    return next((row[name] for name in names if row.get(name) is not None), None)


def _seconds(value: Any, field: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value)
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return int(moment.timestamp())
    raise BadLine(f"{field} must be unix seconds or an ISO 8601 time with its time zone")


def _key(row: dict[str, Any]) -> dict[str, Any]:
    """One line's key as the ImportKeys request carries it."""
    key: dict[str, Any] = {}
    for field, names in _TEXT_FIELDS.items():
        value = _first(row, names)
        if value is not None and not isinstance(value, str):
            raise BadLine(f"{field} must be a string")
        key[field] = value or ""
    scopes = row.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise BadLine("scopes must be a list of strings")
    key["scopes"] = scopes
    for field, names in _TIME_FIELDS.items():
        key[field] = _seconds(_first(row, names), field)
    return key


def read_key_file(lines: Iterator[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The keys of a file's lines (each with its ``line``) and the problems found (``line N:
    ...``): lines that are not a JSON object of the right types, ids or hashes repeated."""
    keys: list[dict[str, Any]] = []
    problems: list[str] = []
    first: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            row = orjson.loads(text)
            if not isinstance(row, dict):
                raise BadLine("not a JSON object")
            key = _key(row)
        except orjson.JSONDecodeError:
            problems.append(f"line {number}: not JSON")
            continue
        except BadLine as exc:
            problems.append(f"line {number}: {exc}")
            continue
        repeated = ""
        for field, value in (("id", key["id"]), ("hash", key["hash"].lower())):
            seen = f"{field} {value}"
            if value and seen in first and not repeated:
                repeated = f"line {number}: the same {field} as line {first[seen]}"
            if value:
                first.setdefault(seen, number)
        if repeated:
            problems.append(repeated)
            continue
        keys.append({"line": number, **key})
    return keys, problems


def _batches(keys: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _send(client: SyncClient, keys: list[dict[str, Any]], size: int, *, check: bool) -> list[int]:
    """[imported, already present, revoked] over every batch; exits 1 on a failure (with
    check, after every batch, reporting each bad line)."""
    totals = [0, 0, 0]
    problems: list[str] = []
    for batch in _batches(keys, size):
        try:
            answer = client.post(IMPORT_PATH, {"keys": batch, "check_only": check})
        except APIError as exc:
            if check and exc.code == 400:
                problems.append(exc.detail)
                continue
            done = f"; {totals[0]} keys imported before it" if not check else ""
            raise fail(f"{exc}{done}. Run the same command again to finish.") from None
        except ClientError as exc:
            raise fail(f"{client.address}: {exc}") from None
        for index, name in enumerate(("imported", "already_present", "revoked")):
            totals[index] += int(answer.get(name, 0))
    if problems:
        raise fail("nothing imported: " + "; ".join(problems))
    return totals


FILE = typer.Argument(..., help="JSON lines, one key a line (M3O's v1 store records).")
BATCH_SIZE = typer.Option(BATCH, "--batch", min=1, max=MAX_BATCH, help="Keys per request.")
CHECK = typer.Option(False, "--check", help="Check the file; import nothing.")
ADMIN_TOKEN = typer.Option(
    "",
    "--token",
    envvar="M3O_ADMIN_TOKEN",
    show_default=False,
    help="An admin access token (default: log in as admin, see `m3o token`).",
)


def keys_import(  # noqa: PLR0917 - typer passes every option as an argument
    file: Path = FILE,
    batch: int = BATCH_SIZE,
    check: bool = CHECK,
    address: str = ADDRESS,
    token: str = ADMIN_TOKEN,
    data_dir: Path = DATA_DIR,
) -> None:
    """Import API keys exported from M3O (admin): they keep working, listed as legacy."""
    try:
        with file.open(encoding="utf-8") as lines:
            keys, problems = read_key_file(lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{file}: {exc}") from None
    if problems:
        raise fail("nothing imported: " + "; ".join(problems))
    if not keys:
        raise fail(f"{file}: no keys in it")
    bearer = token or admin_token(address, data_dir)
    try:
        from m3o.client import SyncClient  # httpx, only when keys are sent

        client = SyncClient(bearer, address, timeout=TIMEOUT)
    except ValueError as exc:  # a malformed address
        raise fail(str(exc)) from None
    with client:
        totals = _send(client, keys, batch, check=True)
        if not check:
            totals = _send(client, keys, batch, check=False)
    label = "would_be_imported" if check else "imported"
    names = (label, "already_present", "revoked")
    typer.echo(json_text(dict(zip(names, totals, strict=True))))
