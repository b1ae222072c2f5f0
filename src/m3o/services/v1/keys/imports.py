"""Importing keys exported from M3O, so that its customers' keys keep working here.

M3O's keys were the base64 of a random UUID's text, stored as their plain SHA-256 (see
``keys/format.py``). An imported key keeps that hash, marked ``legacy``: the gateway
finds it by the SHA-256 of the presented key, and rolling it gives it a key in our format.

An import is all or nothing, and idempotent by key id:

1. every key is checked (fields, duplicates in the request, a hash another key here
   already has); any problem is BadRequest naming each bad line, and nothing is written;
2. keys whose id is already here are left as they are (imported before, perhaps rolled or
   blocked since), and counted as ``already_present``; keys whose id was deleted here
   (revoked since an earlier import, or their customer or project deleted) are not
   brought back, and counted as ``revoked``;
3. each new key's auth account; an account already there with the key's id is used if it
   is the apikey account of the key's project (an earlier attempt made it), else the key
   is a problem (its id is another account's: a customer's, say) and nothing is written;
4. the rows, in one transaction.

A failure at (3) or (4) leaves no row; the accounts made have secrets nobody knows, and
the next attempt uses them. No event is published: the keys are not new, only moved.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import Conflict, Forbidden, NotFound
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.v1 import records
from m3o.services.v1.keys.accounts import APIKEY_ACCOUNT_TYPE, account_request
from m3o.services.v1.keys.format import is_key_hash
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.records import KeyRow
from m3o.services.v1.settings import BLOCK_MESSAGE, MAX_DESCRIPTION_LENGTH, MAX_SCOPES
from m3o.services.v1.view import KeyStatus

__all__ = [
    "IMPORTED_DESCRIPTION",
    "MAX_IMPORTED_KEYS",
    "ImportCheck",
    "LegacyImport",
    "check_keys",
]

_log = get_logger(__name__)

MAX_IMPORTED_KEYS = 1000
"""Keys one ImportKeys request may carry (the CLI sends a file in smaller batches)."""
IMPORTED_DESCRIPTION = "Imported from M3O"
"""Description of an imported key that had none."""
MAX_ACCOUNT_LENGTH = 64
ERRORS_SHOWN = 20
"""Bad lines named in one error; the rest are counted."""
ACCOUNTS_AT_ONCE = 4
"""Auth accounts created concurrently (each costs a password hash)."""
PROBE_TOKEN_SECONDS = 60
"""Lifetime of the token that shows whose an existing account is."""


@dataclass(frozen=True, slots=True)
class ImportCheck:
    """What an import would do: the rows to add, how many are already here, how many were
    deleted here, the problems (``line N: ...``) that stop it."""

    new: list[KeyRow]
    already_present: int
    revoked: int
    problems: list[str]

    def summary(self) -> str:
        shown = "; ".join(self.problems[:ERRORS_SHOWN])
        more = len(self.problems) - ERRORS_SHOWN
        return shown + (f"; and {more} more bad lines" if more > 0 else "")


def _unix(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _scopes(given: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for scope in given:
        if scope.strip():
            seen.setdefault(scope.strip().lower(), None)
    return tuple(seen)


def _problem(key: pb.LegacyKey) -> str:
    """Why ``key`` cannot be imported; empty when it can."""
    if not key.id.strip():
        return "missing id"
    if not _is_uuid(key.id.strip()):
        return "id must be a UUID, as M3O's key ids were"
    if not is_key_hash(key.hash.strip().lower()):
        return "hash must be the key's hex SHA-256 (64 hexadecimal digits)"
    if not key.project.strip():
        return "missing project"
    if max(len(key.project.strip()), len(key.owner.strip())) > MAX_ACCOUNT_LENGTH:
        return f"project and owner are at most {MAX_ACCOUNT_LENGTH} characters"
    scopes = _scopes(key.scopes)
    if not scopes:
        return "missing scopes"
    if len(scopes) > MAX_SCOPES:
        return f"a key may have at most {MAX_SCOPES} scopes"
    longest = max(len(key.description.strip()), len(key.status_message.strip()))
    if longest > MAX_DESCRIPTION_LENGTH:
        return f"description and status_message are at most {MAX_DESCRIPTION_LENGTH} characters"
    if key.status not in ("", KeyStatus.ACTIVE.value, KeyStatus.BLOCKED.value):
        return "status must be active or blocked"
    if key.created < 0 or key.last_seen < 0:
        return "created and last_seen are unix seconds, not negative"
    return ""


def _row(key: pb.LegacyKey, *, now: datetime, caller_id: str) -> KeyRow:
    project = key.project.strip()
    blocked = key.status == KeyStatus.BLOCKED.value
    return KeyRow(
        id=key.id.strip(),
        hash=key.hash.strip().lower(),
        scopes=_scopes(key.scopes),
        owner=project,
        billing_account=key.owner.strip() or project,
        created_by=caller_id,
        description=key.description.strip() or IMPORTED_DESCRIPTION,
        created=_unix(key.created) or now,
        status=KeyStatus.BLOCKED if blocked else KeyStatus.ACTIVE,
        status_message=(key.status_message.strip() or BLOCK_MESSAGE) if blocked else "",
        last_seen=_unix(key.last_seen),
        legacy=True,
    )


def check_keys(
    keys: Sequence[pb.LegacyKey],
    present: dict[str, str],
    removed: set[str],
    *,
    now: datetime,
    caller_id: str,
) -> ImportCheck:
    """Check ``keys`` against each other, against ``present`` (hash -> id of the keys here
    with one of their ids or hashes) and ``removed`` (the ids of their keys deleted here)."""
    present_ids = set(present.values())
    revoked = 0
    new: list[KeyRow] = []
    problems: list[str] = []
    already = 0
    first_line: dict[str, int] = {}
    for position, key in enumerate(keys, start=1):
        line = key.line or position
        problem = _problem(key)
        if problem:
            problems.append(f"line {line}: {problem}")
            continue
        row = _row(key, now=now, caller_id=caller_id)
        for seen in (f"id {row.id}", f"hash {row.hash}"):
            if seen in first_line:
                problem = f"the same {seen.split()[0]} as line {first_line[seen]}"
            first_line.setdefault(seen, line)
        if problem:
            problems.append(f"line {line}: {problem}")
        elif row.id in present_ids:
            already += 1
        elif row.id in removed:
            revoked += 1
        elif row.hash in present:
            problems.append(f"line {line}: key {present[row.hash]} already has this hash")
        else:
            new.append(row)
    return ImportCheck(new, already, revoked, problems)


class LegacyImport:
    """Checks and performs ImportKeys requests."""

    def __init__(
        self, *, sessions: SessionFactory, auth: AuthService, clock: Clock = utc_now
    ) -> None:
        self._sessions = sessions
        self._auth = auth
        self._clock = clock

    async def check(self, keys: Sequence[pb.LegacyKey], *, caller_id: str) -> ImportCheck:
        ids = {key.id.strip() for key in keys}
        async with self._sessions() as session:
            present = await records.found_ids(
                session, ids=ids, hashes={key.hash.strip().lower() for key in keys}
            )
            removed = await records.removed_ids(session, ids)
        return check_keys(keys, present, removed, now=self._clock(), caller_id=caller_id)

    async def make_accounts(self, check: ImportCheck) -> list[str]:
        """Make each new key's auth account; the problems (``key <id>: ...``) of ids that
        are already another account's. An apikey account of the same project is an
        earlier attempt's and is used. Raises the M3OError of a failed call."""
        limit = asyncio.Semaphore(ACCOUNTS_AT_ONCE)

        async def make(row: KeyRow) -> str:
            async with limit:
                try:
                    await self._auth.generate(account_request(row))
                except Conflict:
                    if not await self._is_account_of(row):
                        return f"key {row.id}: the id of another account, not a key's"
                return ""

        made = await asyncio.gather(*(make(row) for row in check.new), return_exceptions=True)
        for outcome in made:
            if isinstance(outcome, BaseException):
                raise outcome
        return [problem for problem in made if isinstance(problem, str) and problem]

    async def _is_account_of(self, row: KeyRow) -> bool:
        """Whether the existing account ``row.id`` is the apikey account of ``row``'s
        project (auth has no read by id: a short token of it is inspected)."""
        try:
            granted = await self._auth.grant(
                auth_pb.GrantRequest(id=row.id, token_expiry=PROBE_TOKEN_SECONDS)
            )
            inspected = await self._auth.inspect(
                auth_pb.InspectRequest(token=granted.token.access_token)
            )
        except (Forbidden, NotFound):  # blocked, or deleted meanwhile
            return False
        account = inspected.account
        return account.type == APIKEY_ACCOUNT_TYPE and (
            account.metadata.get("apikey_owner") == row.owner
        )

    async def write(self, check: ImportCheck) -> int:
        """Write the new keys of a check without problems, their accounts made; how many
        this call added (fewer when a concurrent import added some first, or a key was
        revoked meanwhile). Raises the M3OError of a failed step, having written no row."""
        async with transaction(self._sessions) as session:
            ids = {row.id for row in check.new}
            present = await records.found_ids(
                session, ids=ids, hashes={row.hash for row in check.new}
            )
            # a concurrent import, or a revoke of what it imported, came first
            gone = await records.removed_ids(session, ids) | set(present.values())
            added = [row for row in check.new if row.id not in gone and row.hash not in present]
            for row in added:
                await records.insert_new(session, row)
        _log.info("v1.keys_imported", imported=len(added), already_present=check.already_present)
        return len(added)
