"""Access rules: the defaults, CreateRule, DeleteRule, ListRules and Verify."""

from __future__ import annotations

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.services.auth.handler import Auth
from m3o.services.auth.proto import auth_pb2 as pb
from m3o.services.auth.rules import DEFAULT_RULES
from services.auth.support import ADMIN, SERVICE, World, call, customer

ANN = customer("ann")
APIKEY = Account(id="key1", type="apikey", scopes=("helloworld",))


def rule(
    rule_id: str,
    name: str = "*",
    endpoint: str = "*",
    scope: str = "*",
    access: str = "grant",
    priority: int = 0,
    kind: str = "service",
) -> pb.Rule:
    return pb.Rule(
        id=rule_id,
        resource=pb.Resource(type=kind, name=name, endpoint=endpoint),
        scope=scope,
        access=access,
        priority=priority,
    )


async def verify(
    world: World, account: Account | None, name: str, endpoint: str, kind: str = "service"
) -> str:
    """``ok``, or the kind of error Verify raised."""
    request = pb.VerifyRequest(resource=pb.Resource(type=kind, name=name, endpoint=endpoint))
    try:
        await world.auth.verify(request, call("Verify", account))
    except (Unauthorized, Forbidden) as exc:
        return type(exc).__name__
    return "ok"


async def replace_rules(world: World, *rules: pb.Rule) -> None:
    for existing in (await world.auth.list_rules(pb.ListRulesRequest(), call("ListRules"))).rules:
        await world.auth.delete_rule(pb.DeleteRuleRequest(id=existing.id), call("DeleteRule"))
    for item in rules:
        await world.auth.create_rule(pb.CreateRuleRequest(rule=item), call("CreateRule"))


# The default rules


DEFAULTS = [
    (None, "signup", "Signup.SendVerificationEmail", "ok"),
    (None, "oauth", "Oauth.GoogleLogin", "ok"),
    (None, "customers", "Customers.Login", "ok"),
    (None, "customers", "Customers.Read", "Unauthorized"),
    (None, "explore", "Explore.Search", "ok"),
    (None, "publicapi", "Publicapi.Get", "ok"),
    (None, "publicapi", "Publicapi.List", "ok"),
    (None, "publicapi", "Publicapi.Publish", "Unauthorized"),
    (None, "endtoend", "Endtoend.Check", "ok"),
    (None, "endtoend", "Endtoend.Mailin", "ok"),
    (None, "endtoend", "Endtoend.Run", "Unauthorized"),
    (None, "stripe", "Stripe.Webhook", "ok"),
    (None, "stripe", "Stripe.CreateCheckout", "Unauthorized"),
    (None, "status", "Status.Call", "ok"),
    (None, "auth", "Auth.Token", "ok"),
    (None, "auth", "Auth.PublicKeys", "ok"),
    (None, "auth", "Auth.ListRules", "Unauthorized"),
    (None, "auth", "Auth.Generate", "Unauthorized"),
    (ANN, "customers", "Customers.Read", "ok"),
    (APIKEY, "balance", "Balance.Current", "ok"),
    (ADMIN, "auth", "Auth.Generate", "ok"),
]


async def test_default_rules(world: World) -> None:
    """Public endpoints need no account; every other one needs some account."""
    got = [
        (account, name, endpoint, await verify(world, account, name, endpoint))
        for account, name, endpoint, _ in DEFAULTS
    ]
    assert got == DEFAULTS


async def test_seeding_twice_adds_nothing_and_keeps_operator_changes(world: World) -> None:
    changed = rule("default-any-account", scope="admin")
    await world.auth.create_rule(pb.CreateRuleRequest(rule=changed), call("CreateRule"))
    await world.auth.seed_default_rules()
    rules = (await world.auth.list_rules(pb.ListRulesRequest(), call("ListRules"))).rules
    assert len(rules) == len(DEFAULT_RULES)
    assert next(r for r in rules if r.id == "default-any-account").scope == "admin"


# Evaluation


async def test_verify_applies_the_stored_rules(world: World) -> None:
    """Evaluation itself is covered in tests/runtime/test_tokens.py; this checks that
    Verify applies the rules as stored, with the right error kinds."""
    await replace_rules(world)
    assert await verify(world, None, "customers", "Customers.Update") == "Unauthorized"
    assert await verify(world, ANN, "customers", "Customers.Update") == "Forbidden"
    await replace_rules(
        world,
        rule("admins", scope="admin", priority=1),
        rule("public-read", name="customers", endpoint="Customers.Read", scope=""),
        rule("no-customers", scope="customer", access="deny", priority=1),
        rule("also-grant", scope="customer", priority=1),
    )
    assert await verify(world, ADMIN, "customers", "Customers.Update") == "ok"
    assert await verify(world, None, "customers", "Customers.Read") == "ok"
    assert await verify(world, ANN, "customers", "Customers.Read") == "Forbidden"
    assert await verify(world, ANN, "billing", "Billing.Charge") == "Forbidden"
    assert await verify(world, SERVICE, "billing", "Billing.Charge") == "ok"


async def test_verify_errors_carry_the_verify_id(world: World) -> None:
    await replace_rules(world)
    request = pb.VerifyRequest(resource=pb.Resource(type="service", name="x", endpoint="X.Y"))
    with pytest.raises(Forbidden) as caught:
        await world.auth.verify(request, call("Verify", ANN))
    assert caught.value == Forbidden("auth.verify", "Forbidden")


async def test_verify_without_a_resource_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest):
        await world.auth.verify(pb.VerifyRequest(), call("Verify", ANN))
    partial = pb.VerifyRequest(resource=pb.Resource(type="service", name="customers"))
    with pytest.raises(BadRequest):
        await world.auth.verify(partial, call("Verify", ANN))


# CreateRule, DeleteRule, ListRules


async def test_create_rule_replaces_a_rule_with_the_same_id(world: World) -> None:
    await replace_rules(world, rule("r1", access="grant"))
    await world.auth.create_rule(
        pb.CreateRuleRequest(rule=rule("r1", access="deny")), call("CreateRule")
    )
    rules = (await world.auth.list_rules(pb.ListRulesRequest(), call("ListRules"))).rules
    assert [(r.id, r.access) for r in rules] == [("r1", "deny")]


@pytest.mark.parametrize(
    ("account", "refused"),
    [(None, Unauthorized), (ANN, Forbidden), (APIKEY, Forbidden), (ADMIN, None), (SERVICE, None)],
)
async def test_list_rules_answers_admins_and_services_only(
    world: World, account: Account | None, refused: type[Exception] | None
) -> None:
    request = pb.ListRulesRequest()
    if refused is None:
        assert (await world.auth.list_rules(request, call("ListRules", account))).rules
        return
    with pytest.raises(refused):
        await world.auth.list_rules(request, call("ListRules", account))


async def test_seeding_removes_the_retired_public_rule_of_list_rules(world: World) -> None:
    retired = rule("default-public-auth-listrules", "auth", "Auth.ListRules", scope="")
    await world.auth.create_rule(pb.CreateRuleRequest(rule=retired), call("CreateRule"))

    await world.auth.seed_default_rules()

    rules = (await world.auth.list_rules(pb.ListRulesRequest(), call("ListRules"))).rules
    assert "default-public-auth-listrules" not in {r.id for r in rules}
    assert await verify(world, None, "auth", "Auth.ListRules") == "Unauthorized"


async def test_list_rules_puts_the_highest_priority_first(world: World) -> None:
    await replace_rules(world, rule("low", priority=-1), rule("high", priority=9), rule("mid"))
    rules = (await world.auth.list_rules(pb.ListRulesRequest(), call("ListRules"))).rules
    assert [r.id for r in rules] == ["high", "mid", "low"]
    assert rules[0] == rule("high", priority=9)


async def test_create_rule_bad_input_is_bad_request(world: World) -> None:
    cases = [
        (pb.CreateRuleRequest(), "Missing rule"),
        (pb.CreateRuleRequest(rule=rule("")), "Missing rule id"),
        (
            pb.CreateRuleRequest(rule=pb.Rule(id="r", access="grant")),
            "Missing resource type, name or endpoint",
        ),
        (pb.CreateRuleRequest(rule=rule("r", access="allow")), "Access must be grant or deny"),
    ]
    for request, detail in cases:
        with pytest.raises(BadRequest) as caught:
            await world.auth.create_rule(request, call("CreateRule"))
        assert caught.value == BadRequest("auth.createrule", detail)


async def test_delete_rule_unknown_is_not_found_and_missing_id_bad_request(world: World) -> None:
    with pytest.raises(NotFound):
        await world.auth.delete_rule(pb.DeleteRuleRequest(id="nope"), call("DeleteRule"))
    with pytest.raises(BadRequest):
        await world.auth.delete_rule(pb.DeleteRuleRequest(), call("DeleteRule"))


async def test_changing_rules_needs_an_admin_or_service(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.auth.create_rule(pb.CreateRuleRequest(rule=rule("r")), call("CreateRule", ANN))
    with pytest.raises(Unauthorized):
        await world.auth.delete_rule(pb.DeleteRuleRequest(id="r"), call("DeleteRule", None))
    await world.auth.create_rule(pb.CreateRuleRequest(rule=rule("r")), call("CreateRule", SERVICE))


async def test_rule_changes_are_announced(world: World) -> None:
    changes: list[str] = []
    auth = Auth(
        sessions=world.sessions,
        counters=world.counters,
        on_rules_changed=lambda: changes.append("changed"),
    )
    await auth.create_rule(pb.CreateRuleRequest(rule=rule("r")), call("CreateRule"))
    await auth.delete_rule(pb.DeleteRuleRequest(id="r"), call("DeleteRule"))
    assert changes == ["changed", "changed"]
