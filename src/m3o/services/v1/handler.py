"""The v1 service: API keys for the public API.

GenerateKey is all or nothing. Its steps, each undone if a later one fails:

1. the key's auth account (type ``apikey``, id = the key id, the key's scopes, metadata
   ``apikey_owner`` = the project), through which the gateway gets tokens for upstreams;
2. the key's record in the counter-store mirror (nobody knows the key yet, so an entry
   written early is harmless, and it is never written inside a database transaction);
3. the row and the GenerateKey event, in one transaction.

Revoking, blocking and unblocking are in ``keys/changes.py``; the consumers in
``consumers.py``. Who may act on a key: a customer on the keys of their projects (a key
of another project is ``Not found``, never Forbidden, so ids reveal nothing), an admin on
any key. An admin is a member of no project, so GenerateKey and ListKeys need an admin to
name the project (``project_id``): without one the answer is BadRequest, not a failed
lookup of the admin's projects.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.customers import TOPIC, EventType
from m3o.runtime.auth import (
    Account,
    CallContext,
    is_admin,
    is_customer,
    verify_admin,
    verify_customer,
    verify_service,
)
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
)
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc.calls import Calls
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.client import AuthService
from m3o.services.v1 import records
from m3o.services.v1.catalog import ApiNames
from m3o.services.v1.keys.accounts import account_request
from m3o.services.v1.keys.changes import KeyChanges, Selection
from m3o.services.v1.keys.events import key_event
from m3o.services.v1.keys.format import hash_key, is_key_hash, new_key
from m3o.services.v1.keys.imports import MAX_IMPORTED_KEYS, LegacyImport
from m3o.services.v1.keys.mirror import KeyMirror
from m3o.services.v1.owners import Project, ProjectDirectory, choose_project
from m3o.services.v1.proto import v1_pb2 as pb
from m3o.services.v1.records import KeyRow
from m3o.services.v1.settings import (
    BLOCK_MESSAGE,
    MAX_DESCRIPTION_LENGTH,
    MAX_EXPIRES_IN,
    MAX_SCOPES,
    KeySettings,
)
from m3o.services.v1.view import ALL_APIS, KeyStatus

__all__ = ["ADMIN_NEEDS_PROJECT", "V1"]

_log = get_logger(__name__)
_calls = Calls("v1.call_failed")

ADMIN_NEEDS_PROJECT = "Missing project_id field: an admin has no project of their own"


class V1:
    """Implements ``v1.V1`` (see ``proto/v1.proto``)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        mirror: KeyMirror,
        changes: KeyChanges,
        imports: LegacyImport,
        auth: AuthService,
        projects: ProjectDirectory,
        catalog: ApiNames,
        settings: KeySettings,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._mirror = mirror
        self._changes = changes
        self._imports = imports
        self._auth = auth
        self._projects = projects
        self._catalog = catalog
        self._settings = settings
        self._clock = clock

    async def generate_key(
        self, request: pb.GenerateKeyRequest, ctx: CallContext
    ) -> pb.GenerateKeyResponse:
        account = verify_customer(ctx)
        scopes = _normalised_scopes(request.scopes)
        if not scopes:
            raise BadRequest(ctx.endpoint, "Missing scopes field")
        description = request.description.strip()
        if not description:
            raise BadRequest(ctx.endpoint, "Missing description field")
        if len(scopes) > MAX_SCOPES:
            raise BadRequest(ctx.endpoint, f"A key may have at most {MAX_SCOPES} scopes")
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise BadRequest(
                ctx.endpoint, f"description is longer than {MAX_DESCRIPTION_LENGTH} characters"
            )
        if request.expires_in < 0:
            raise BadRequest(ctx.endpoint, "expires_in must not be negative")
        if request.expires_in > MAX_EXPIRES_IN.total_seconds():
            raise BadRequest(
                ctx.endpoint,
                f"expires_in must be at most {int(MAX_EXPIRES_IN.total_seconds())} seconds",
            )
        await self._check_scopes(ctx, scopes)
        project = await self._owning_project(ctx, account, request.project_id.strip())
        key = new_key()
        now = self._clock()
        row = KeyRow(
            id=str(uuid.uuid4()),
            hash=hash_key(key, self._settings.pepper),
            scopes=scopes,
            owner=project.id,
            billing_account=project.billing_account,
            created_by=account.id,
            description=description,
            created=now,
            expires=now + timedelta(seconds=request.expires_in) if request.expires_in else None,
        )
        await self._create(ctx, account, row)
        _log.info("v1.key_generated", key_id=row.id, project_id=row.owner, caller=account.id)
        return pb.GenerateKeyResponse(api_key=key, api_key_id=row.id)

    async def list_keys(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        account = verify_customer(ctx)
        wanted = request.project_id.strip()
        if is_admin(account):
            projects: Sequence[Project] = [await self._named_project(ctx, wanted)]
        else:
            projects = await self._projects_of(ctx)
            if wanted:
                projects = [choose_project(ctx, projects, wanted)]
        async with self._sessions() as session:
            found = await records.of_projects(session, {project.id for project in projects})
        return pb.ListResponse(api_keys=[row.to_proto() for row in found])

    async def revoke_key(self, request: pb.RevokeRequest, ctx: CallContext) -> pb.RevokeResponse:
        account = verify_customer(ctx)
        row = await self._managed_key(ctx, account, request.id)
        acting_customer = account.id if is_customer(account) else ""
        await _calls.call(
            ctx,
            "delete",
            self._changes.delete([row], caller_id=account.id, customer_id=acting_customer),
        )
        return pb.RevokeResponse()

    async def block_key(self, request: pb.BlockKeyRequest, ctx: CallContext) -> pb.BlockKeyResponse:
        account = verify_admin(ctx)
        message = request.message.strip() or BLOCK_MESSAGE
        if len(message) > MAX_DESCRIPTION_LENGTH:
            raise BadRequest(
                ctx.endpoint, f"message is longer than {MAX_DESCRIPTION_LENGTH} characters"
            )
        select = await self._selection(ctx, request.user_id, request.key_id, KeyStatus.ACTIVE)
        await self._changes.set_status(select, KeyStatus.BLOCKED, message, caller_id=account.id)
        return pb.BlockKeyResponse()

    async def unblock_key(
        self, request: pb.UnblockKeyRequest, ctx: CallContext
    ) -> pb.UnblockKeyResponse:
        account = verify_admin(ctx)
        select = await self._selection(ctx, request.user_id, request.key_id, KeyStatus.BLOCKED)
        await self._changes.set_status(select, KeyStatus.ACTIVE, "", caller_id=account.id)
        return pb.UnblockKeyResponse()

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        account = verify_admin(ctx)
        customer_id = request.id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing ID field")
        async with self._sessions() as session:
            found = await records.of_billing_account(session, customer_id)
        await _calls.call(ctx, "delete", self._changes.delete(found, caller_id=account.id))
        return pb.DeleteCustomerResponse()

    async def list_apis(self, request: pb.ListAPIsRequest, ctx: CallContext) -> pb.ListAPIsResponse:
        verify_customer(ctx)
        names = await _calls.call(ctx, "publicapi.list", self._catalog.names())
        return pb.ListAPIsResponse(names=names)

    async def resolve_key(
        self, request: pb.ResolveKeyRequest, ctx: CallContext
    ) -> pb.ResolveKeyResponse:
        verify_service(ctx)
        key_hash = request.hash
        if not key_hash:
            raise BadRequest(ctx.endpoint, "Missing hash field")
        if not is_key_hash(key_hash):
            raise BadRequest(ctx.endpoint, "Invalid hash field")
        row = await self._by_hash(key_hash)
        if row is None or row.expired(self._clock()):
            raise NotFound(ctx.endpoint, "Not found")
        try:
            await self._mirror.put(row.record)
        except M3OError as exc:
            # The gateway still gets its answer; it will ask again.
            _log.warning("v1.mirror_reload_failed", key_id=row.id, error=exc.detail)
            return pb.ResolveKeyResponse(key=row.record.to_proto())
        # A change committed after our read may have written the mirror before we did:
        # read again, and correct the entry if the row moved on.
        again = await self._by_hash(key_hash)
        if again is None:
            await self._mirror.try_remove(row.id, row.hash)
            raise NotFound(ctx.endpoint, "Not found")
        if again.record != row.record:
            await self._mirror.refresh([again.record])
        return pb.ResolveKeyResponse(key=again.record.to_proto())

    async def roll_key(self, request: pb.RollKeyRequest, ctx: CallContext) -> pb.RollKeyResponse:
        account = verify_customer(ctx)
        row = await self._managed_key(ctx, account, request.id)
        key = new_key()
        rolled = await _calls.call(
            ctx, "roll", self._changes.roll(row, hash_key(key, self._settings.pepper))
        )
        if rolled is None:
            raise NotFound(ctx.endpoint, "Not found")
        _log.info("v1.key_rolled", key_id=row.id, was_legacy=row.legacy, caller=account.id)
        return pb.RollKeyResponse(api_key=key, api_key_id=row.id)

    async def import_keys(
        self, request: pb.ImportKeysRequest, ctx: CallContext
    ) -> pb.ImportKeysResponse:
        account = verify_admin(ctx)
        if not request.keys:
            raise BadRequest(ctx.endpoint, "Missing keys field")
        if len(request.keys) > MAX_IMPORTED_KEYS:
            raise BadRequest(ctx.endpoint, f"At most {MAX_IMPORTED_KEYS} keys per request")
        check = await self._imports.check(request.keys, caller_id=account.id)
        if check.problems:
            raise BadRequest(ctx.endpoint, check.summary())
        imported = len(check.new)
        if not request.check_only:
            taken = await _calls.call(ctx, "import", self._imports.make_accounts(check))
            if taken:
                raise BadRequest(ctx.endpoint, "; ".join(taken))
            imported = await _calls.call(ctx, "import", self._imports.write(check))
        already = check.already_present + len(check.new) - imported
        return pb.ImportKeysResponse(
            imported=imported, already_present=already, revoked=check.revoked
        )

    # -- shared steps ------------------------------------------------------------------------

    async def _create(self, ctx: CallContext, account: Account, row: KeyRow) -> None:
        await _calls.call(ctx, "auth.generate", self._auth.generate(account_request(row)))
        event = key_event(
            EventType.EventTypeGenerateKey,
            row,
            caller_id=account.id,
            customer_id=account.id if is_customer(account) else "",
            customer_email=account.name if is_customer(account) else "",
        )
        try:
            await self._mirror.put(row.record)
            async with transaction(self._sessions) as session:
                await records.insert_new(session, row)
                await self._publisher.publish(TOPIC, event, session=session)
        except BaseException as exc:
            await self._undo_create(row)
            if isinstance(exc, M3OError):
                raise _calls.failure(ctx, "store", exc) from None
            raise

    async def _undo_create(self, row: KeyRow) -> None:
        """Remove what a failed GenerateKey created; a failure here is logged (an auth
        account without a row can never be reached: nobody holds its secret)."""
        await self._mirror.try_remove(row.id, row.hash)
        try:
            await self._auth.delete(auth_pb.DeleteRequest(id=row.id))
        except NotFound:
            return
        except M3OError as exc:
            _log.error("v1.generate_undo_failed", key_id=row.id, error=exc.detail)

    async def _check_scopes(self, ctx: CallContext, scopes: Sequence[str]) -> None:
        named = [scope for scope in scopes if scope != ALL_APIS]
        if not named:
            return
        published = set(await _calls.call(ctx, "publicapi.list", self._catalog.names()))
        if not published.issuperset(named):
            raise Forbidden(ctx.endpoint, "Not allowed to generate a key with requested scopes")

    async def _projects_of(self, ctx: CallContext) -> Sequence[Project]:
        return await _calls.call(ctx, "projects.list", self._projects.projects_of(ctx))

    async def _owning_project(self, ctx: CallContext, account: Account, wanted: str) -> Project:
        """The project a new key belongs to: for a customer one of theirs (see
        :func:`choose_project`), for an admin the one they name."""
        if is_admin(account):
            return await self._named_project(ctx, wanted)
        return choose_project(ctx, await self._projects_of(ctx), wanted)

    async def _named_project(self, ctx: CallContext, wanted: str) -> Project:
        """The project an admin names (any project); an admin has none of their own."""
        if not wanted:
            raise BadRequest(ctx.endpoint, ADMIN_NEEDS_PROJECT)
        found = await _calls.call(ctx, "projects.read", self._projects.project(ctx, wanted))
        if found is None:
            raise NotFound(ctx.endpoint, "Project not found")
        return found

    async def _managed_key(self, ctx: CallContext, account: Account, key_id: str) -> KeyRow:
        """The key ``key_id`` names, if the caller may manage it; else BadRequest (no id)
        or NotFound."""
        key_id = key_id.strip()
        if not key_id:
            raise BadRequest(ctx.endpoint, "Missing ID field")
        async with self._sessions() as session:
            row = await records.find(session, key_id)
        if row is None or not await self._may_manage(ctx, account, row):
            raise NotFound(ctx.endpoint, "Not found")
        return row

    async def _may_manage(self, ctx: CallContext, account: Account, row: KeyRow) -> bool:
        if is_admin(account):
            return True
        projects = await self._projects_of(ctx)
        return any(project.id == row.owner for project in projects)

    async def _by_hash(self, key_hash: str) -> KeyRow | None:
        async with self._sessions() as session:
            return await records.find_by_hash(session, key_hash)

    async def _selection(
        self, ctx: CallContext, user_id: str, key_id: str, status: KeyStatus
    ) -> Selection:
        """What BlockKey / UnblockKey act on: one key (of ``user_id`` if given), else every
        key of ``user_id`` in ``status``. An unknown key is NotFound."""
        user_id, key_id = user_id.strip(), key_id.strip()
        if key_id:
            async with self._sessions() as session:
                row = await records.find(session, key_id)
            if row is None or (user_id and row.billing_account != user_id):
                raise NotFound(ctx.endpoint, "Not found")

            async def one(session: AsyncSession) -> list[KeyRow]:
                found = await records.find(session, key_id, lock=True)
                return [] if found is None else [found]

            return one
        if not user_id:
            raise BadRequest(ctx.endpoint, "Missing user_id field")

        async def every(session: AsyncSession) -> list[KeyRow]:
            return await records.of_billing_account(session, user_id, status=status, lock=True)

        return every


def _normalised_scopes(given: Sequence[str]) -> tuple[str, ...]:
    """Scopes trimmed and lower-cased (API names are), empty ones dropped, each once."""
    seen: dict[str, None] = {}
    for scope in given:
        cleaned = scope.strip().lower()
        if cleaned:
            seen.setdefault(cleaned, None)
    return tuple(seen)
