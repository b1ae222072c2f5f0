"""The service definition, served as a process serves it: token checks and rules in front."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from m3o.runtime.auth.access import CachedRules, RuleSpec
from m3o.runtime.auth.tokens import JwtAuthenticator, ServiceTokenSource
from m3o.runtime.config import ConfigError, build_config
from m3o.runtime.config.sections import PasswordHashConfig
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Forbidden, Unauthorized
from m3o.runtime.rpc import Dispatcher, InProcessTransport, StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.auth import tables
from m3o.services.auth.handler import Auth
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.proto.client import SPEC, AuthClient
from m3o.services.auth.rules import rules_from_pb
from m3o.services.auth.service import PUBLIC_METHODS, definition, password_hasher, settings_from
from support.services import NoClients, dependencies

SERVICE_SECRET = "a shared service secret"
CHEAP_HASH = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@dataclass
class Served:
    transport: InProcessTransport
    anonymous: AuthClient
    rules: CachedRules
    invalidations: list[str]

    def client(self, token: str) -> AuthClient:
        return AuthClient(self.transport, StaticToken(token))


@pytest.fixture
async def served(engine: AsyncEngine, sessions: SessionFactory) -> Served:
    """The auth service built by its definition, behind a dispatcher as a node serves it."""
    transport = InProcessTransport()
    anonymous = AuthClient(transport)
    counters = SqlCounterStore(engine)
    invalidations: list[str] = []

    async def jwks() -> str:
        return (await anonymous.public_keys(pb.PublicKeysRequest())).jwks

    async def platform_token() -> tuple[str, datetime]:
        issued = await anonymous.token(pb.TokenRequest(id="platform", secret=SERVICE_SECRET))
        return issued.token.access_token, datetime.fromtimestamp(issued.token.expiry, UTC)

    as_platform = AuthClient(transport, ServiceTokenSource(platform_token))

    async def fetch_rules() -> Sequence[RuleSpec]:
        return rules_from_pb(await as_platform.list_rules(pb.ListRulesRequest()))

    rules = CachedRules(fetch_rules)

    def rules_changed() -> None:
        invalidations.append("rules")
        rules.invalidate()

    deps = dependencies(
        "auth",
        engine,
        sessions,
        {
            "auth": {
                "access_token_ttl": "10m",
                "service_secret": SERVICE_SECRET,
                "password_hash": CHEAP_HASH,
            }
        },
        clients=NoClients("auth"),
        counters=counters,
        service_names=("auth", "customers", "platform"),
        on_rules_changed=rules_changed,
    )
    parts = await definition.build(deps)
    for start in parts.on_start:
        await start()
    [handler] = parts.handlers
    assert isinstance(handler.implementation, Auth)
    transport.register(
        Dispatcher(
            handler.spec,
            handler.implementation,
            authenticator=JwtAuthenticator(jwks, counters),
            rules=rules,
            public=handler.public,
        )
    )
    return Served(transport, anonymous, rules, invalidations)


def test_definition_describes_the_service() -> None:
    assert definition.name == "auth"
    assert definition.metadata is tables.metadata
    assert list(definition.specs) == [SPEC]
    assert {"Token", "PublicKeys", "ListRules"} == PUBLIC_METHODS


async def test_a_service_gets_its_token_and_manages_accounts(served: Served) -> None:
    async def fetch() -> tuple[str, datetime]:
        issued = await served.anonymous.token(
            pb.TokenRequest(id="customers", secret=SERVICE_SECRET)
        )
        return issued.token.access_token, datetime.fromtimestamp(issued.token.expiry, UTC)

    customers = AuthClient(served.transport, ServiceTokenSource(fetch))
    created = await customers.generate(
        pb.GenerateRequest(id="ann", secret="ann's secret", type="customer", scopes=["customer"])
    )
    assert created.account.id == "ann"
    issued = await served.anonymous.token(pb.TokenRequest(id="ann", secret="ann's secret"))
    assert issued.token.expiry - issued.token.created == 600  # auth.access_token_ttl


async def test_rules_guard_every_method_but_the_public_ones(served: Served) -> None:
    with pytest.raises(Unauthorized) as caught:
        await served.anonymous.generate(pb.GenerateRequest(id="x"))
    assert caught.value == Unauthorized("auth.generate", "Unauthorized")
    await served.anonymous.public_keys(pb.PublicKeysRequest())
    with pytest.raises(Unauthorized):
        await served.anonymous.token(pb.TokenRequest(id="customers", secret="wrong"))


async def test_rules_are_read_by_admins_and_services_only(served: Served) -> None:
    with pytest.raises(Unauthorized) as anonymous:
        await served.anonymous.list_rules(pb.ListRulesRequest())
    assert anonymous.value == Unauthorized("auth.listrules", "Unauthorized")
    service = await served.anonymous.token(pb.TokenRequest(id="auth", secret=SERVICE_SECRET))
    as_service = served.client(service.token.access_token)
    await as_service.generate(pb.GenerateRequest(id="ann", secret="pw", type="customer"))
    ann = await served.anonymous.token(pb.TokenRequest(id="ann", secret="pw"))
    with pytest.raises(Forbidden) as customer:
        await served.client(ann.token.access_token).list_rules(pb.ListRulesRequest())
    assert customer.value == Forbidden("auth.listrules", "Forbidden")

    listed = await as_service.list_rules(pb.ListRulesRequest())

    assert "default-any-account" in {rule.id for rule in listed.rules}
    assert "default-public-auth-listrules" not in {rule.id for rule in listed.rules}


async def test_a_customer_is_refused_admin_methods_by_the_handler(served: Served) -> None:
    service = await served.anonymous.token(pb.TokenRequest(id="auth", secret=SERVICE_SECRET))
    admin = served.client(service.token.access_token)
    await admin.generate(pb.GenerateRequest(id="ann", secret="pw", type="customer"))
    ann = await served.anonymous.token(pb.TokenRequest(id="ann", secret="pw"))
    as_ann = served.client(ann.token.access_token)
    with pytest.raises(Forbidden):
        await as_ann.list(pb.ListRequest())
    inspected = await as_ann.inspect(pb.InspectRequest(token=ann.token.access_token))
    assert inspected.account.id == "ann"
    await as_ann.revoke(pb.RevokeRequest())
    with pytest.raises(Unauthorized):
        await as_ann.inspect(pb.InspectRequest(token=ann.token.access_token))


async def test_rule_changes_reach_the_processes_rules_at_once(served: Served) -> None:
    service = await served.anonymous.token(pb.TokenRequest(id="auth", secret=SERVICE_SECRET))
    admin = served.client(service.token.access_token)
    await served.rules.verify(None, "auth", "Auth.Token")  # rules cached
    served.invalidations.clear()
    deny = pb.Rule(
        id="no-tokens",
        resource=pb.Resource(type="service", name="auth", endpoint="Auth.Token"),
        scope="",
        access="deny",
        priority=10,
    )
    await admin.create_rule(pb.CreateRuleRequest(rule=deny))
    assert served.invalidations == ["rules"]
    with pytest.raises(Unauthorized):
        await served.rules.verify(None, "auth", "Auth.Token")


def test_settings_come_from_the_auth_section_and_the_service_names() -> None:
    config = build_config(
        {
            "auth": {
                "access_token_ttl": "5m",
                "customer_token_ttl": "120d",
                "refresh_token_ttl": "7d",
                "service_secret": "from config",
                "login_failures": {"max_per_account": 3, "max_per_address": 9, "window": "1h"},
            }
        },
        {},
    )
    settings = settings_from(config, ["a", "b"])
    assert settings.access_token_ttl == timedelta(minutes=5)
    assert settings.max_token_ttl == timedelta(days=120)
    assert settings.refresh_token_ttl == timedelta(days=7)
    assert settings.service_secret == "from config"
    assert settings.service_names == ("a", "b")
    assert (settings.account_failure_limit, settings.address_failure_limit) == (3, 9)
    assert settings.failure_window == timedelta(hours=1)
    assert "from config" not in repr(settings)


async def test_stored_secrets_are_hashed_with_the_configured_argon2_cost(
    served: Served, sessions: SessionFactory
) -> None:
    async with sessions() as session:
        hashed = (
            await session.execute(
                select(tables.accounts.c.secret_hash).where(tables.accounts.c.id == "platform")
            )
        ).scalar_one()
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_the_default_cost_is_rfc_9106_low_memory_and_logs_nothing() -> None:
    with capture_logs() as logs:
        hasher = password_hasher(build_config({}, {}).auth.password_hash)
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)
    assert logs == []


def test_a_cost_below_the_default_is_used_and_logged() -> None:
    with capture_logs() as logs:
        hasher = password_hasher(PasswordHashConfig(time_cost=2, memory_cost=19456))
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (2, 19456, 4)
    assert [log["event"] for log in logs] == ["auth.password_hash_weaker_than_default"]
    assert logs[0]["log_level"] == "warning"


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"memory_cost": 31, "parallelism": 4}, "at least 8 KiB per lane"),
        ({"time_cost": 0}, "greater than or equal to 1"),
        ({"parallelism": 0}, "greater than or equal to 1"),
    ],
)
def test_a_cost_argon2_cannot_use_is_refused(section: dict[str, int], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        build_config({"auth": {"password_hash": section}}, {})
    assert "auth.password_hash" in str(refused.value)
    assert problem in str(refused.value)
