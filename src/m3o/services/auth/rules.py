"""Access rules: CreateRule, DeleteRule, ListRules, Verify, and the default rules.

Rules are applied by :func:`m3o.runtime.auth.tokens.check_access` (here for Verify, and in
every process through :class:`~m3o.runtime.auth.tokens.CachedRules`): the highest-priority
matching rule decides, deny beats grant at equal priority, and no rule means no access.

The defaults are seeded at every start by fixed ids, and only where missing: an operator's
change to a default rule is kept, a deleted default comes back at the next start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import delete, insert, select

from m3o.runtime.auth import CallContext, verify_admin
from m3o.runtime.auth.access import (
    ANY_ACCOUNT,
    DENY,
    GRANT,
    PUBLIC,
    SERVICE_RESOURCE,
    RuleSpec,
    check_access,
)
from m3o.runtime.errors import BadRequest, NotFound
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.proto import auth_pb2 as pb

__all__ = ["DEFAULT_RULES", "RETIRED_RULES", "Rules", "rule_from_pb", "rule_to_pb", "rules_from_pb"]

_PUBLIC_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("signup", ANY_ACCOUNT),
    ("oauth", ANY_ACCOUNT),
    ("customers", "Customers.Login"),
    ("explore", ANY_ACCOUNT),
    ("publicapi", "Publicapi.Get"),
    ("publicapi", "Publicapi.List"),
    ("endtoend", "Endtoend.Check"),
    ("endtoend", "Endtoend.Mailin"),
    ("stripe", "Stripe.Webhook"),
    ("status", ANY_ACCOUNT),
    ("auth", "Auth.Token"),
    ("auth", "Auth.PublicKeys"),
)

RETIRED_RULES: tuple[str, ...] = ("default-public-auth-listrules",)
"""Default rules of earlier versions, removed at seeding: ``ListRules`` is no longer public
(the rules say who may call what; only admins and services read them)."""


def _public_rule(service: str, endpoint: str) -> RuleSpec:
    suffix = "" if endpoint == ANY_ACCOUNT else f"-{endpoint.rsplit('.', 1)[-1].lower()}"
    return RuleSpec(
        id=f"default-public-{service}{suffix}",
        resource_type=SERVICE_RESOURCE,
        resource_name=service,
        endpoint=endpoint,
        scope=PUBLIC,
        access=GRANT,
        priority=1,
    )


DEFAULT_RULES: tuple[RuleSpec, ...] = (
    *(_public_rule(service, endpoint) for service, endpoint in _PUBLIC_ENDPOINTS),
    # Everything else needs some account; handlers then check roles.
    RuleSpec(
        id="default-any-account",
        resource_type=ANY_ACCOUNT,
        resource_name=ANY_ACCOUNT,
        endpoint=ANY_ACCOUNT,
        scope=ANY_ACCOUNT,
        access=GRANT,
        priority=0,
    ),
)


def rule_to_pb(rule: RuleSpec) -> pb.Rule:
    return pb.Rule(
        id=rule.id,
        resource=pb.Resource(
            type=rule.resource_type, name=rule.resource_name, endpoint=rule.endpoint
        ),
        scope=rule.scope,
        access=rule.access,
        priority=rule.priority,
    )


def rule_from_pb(rule: pb.Rule) -> RuleSpec:
    return RuleSpec(
        id=rule.id,
        resource_type=rule.resource.type,
        resource_name=rule.resource.name,
        endpoint=rule.resource.endpoint,
        scope=rule.scope,
        access=rule.access,
        priority=rule.priority,
    )


def rules_from_pb(response: pb.ListRulesResponse) -> list[RuleSpec]:
    """The rules of a ListRules answer, as :class:`~m3o.runtime.auth.tokens.CachedRules` wants
    them (the wiring fetches them with this)."""
    return [rule_from_pb(rule) for rule in response.rules]


def _row(rule: RuleSpec) -> dict[str, object]:
    return {
        "id": rule.id,
        "resource_type": rule.resource_type,
        "resource_name": rule.resource_name,
        "endpoint": rule.endpoint,
        "scope": rule.scope,
        "access": rule.access,
        "priority": rule.priority,
    }


def _missing_resource(resource: pb.Resource) -> bool:
    return not (resource.type and resource.name and resource.endpoint)


class Rules:
    def __init__(
        self, *, sessions: SessionFactory, on_change: Callable[[], None] | None = None
    ) -> None:
        self._sessions = sessions
        self._on_change = on_change

    async def seed(self, defaults: Iterable[RuleSpec] = DEFAULT_RULES) -> None:
        """Insert each default rule whose id is not there yet; remove the retired ones."""
        async with transaction(self._sessions) as session:
            await session.execute(delete(tables.rules).where(tables.rules.c.id.in_(RETIRED_RULES)))
            present = set((await session.scalars(select(tables.rules.c.id))).all())
            missing = [_row(rule) for rule in defaults if rule.id not in present]
            if missing:
                await session.execute(insert(tables.rules), missing)
        self._changed()

    async def load(self) -> list[RuleSpec]:
        """Every rule, highest priority first."""
        r = tables.rules.c
        async with transaction(self._sessions) as session:
            rows = await session.execute(select(tables.rules).order_by(r.priority.desc(), r.id))
            return [
                RuleSpec(
                    id=row.id,
                    resource_type=row.resource_type,
                    resource_name=row.resource_name,
                    endpoint=row.endpoint,
                    scope=row.scope,
                    access=row.access,
                    priority=row.priority,
                )
                for row in rows
            ]

    async def create_rule(
        self, request: pb.CreateRuleRequest, ctx: CallContext
    ) -> pb.CreateRuleResponse:
        verify_admin(ctx)
        if not request.HasField("rule"):
            raise BadRequest(ctx.endpoint, "Missing rule")
        rule = request.rule
        if not rule.id:
            raise BadRequest(ctx.endpoint, "Missing rule id")
        if _missing_resource(rule.resource):
            raise BadRequest(ctx.endpoint, "Missing resource type, name or endpoint")
        if rule.access not in (GRANT, DENY):
            raise BadRequest(ctx.endpoint, "Access must be grant or deny")
        async with transaction(self._sessions) as session:
            await session.execute(delete(tables.rules).where(tables.rules.c.id == rule.id))
            await session.execute(insert(tables.rules).values(**_row(rule_from_pb(rule))))
        self._changed()
        return pb.CreateRuleResponse()

    async def delete_rule(
        self, request: pb.DeleteRuleRequest, ctx: CallContext
    ) -> pb.DeleteRuleResponse:
        verify_admin(ctx)
        if not request.id:
            raise BadRequest(ctx.endpoint, "Missing rule id")
        async with transaction(self._sessions) as session:
            found = await session.execute(
                select(tables.rules.c.id).where(tables.rules.c.id == request.id)
            )
            if found.first() is None:
                raise NotFound(ctx.endpoint, "Rule not found")
            await session.execute(delete(tables.rules).where(tables.rules.c.id == request.id))
        self._changed()
        return pb.DeleteRuleResponse()

    async def list_rules(
        self, request: pb.ListRulesRequest, ctx: CallContext
    ) -> pb.ListRulesResponse:
        verify_admin(ctx)
        return pb.ListRulesResponse(rules=[rule_to_pb(rule) for rule in await self.load()])

    async def verify(self, request: pb.VerifyRequest, ctx: CallContext) -> pb.VerifyResponse:
        if not request.HasField("resource") or _missing_resource(request.resource):
            raise BadRequest(ctx.endpoint, "Missing resource type, name or endpoint")
        resource = request.resource
        check_access(
            await self.load(),
            ctx.account,
            resource.type,
            resource.name,
            resource.endpoint,
            error_id=ctx.endpoint,
        )
        return pb.VerifyResponse()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
