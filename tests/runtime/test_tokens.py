"""Token verification, access rules and service tokens, as every process uses them."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from m3o.runtime.auth import Account
from m3o.runtime.auth.access import CachedRules, RuleSpec, check_access, is_allowed
from m3o.runtime.auth.tokens import (
    JwtAuthenticator,
    ServiceTokenSource,
    blocked_key,
    revoked_session_key,
)
from m3o.runtime.counters import RateDecision
from m3o.runtime.errors import Forbidden, Unauthorized, Unavailable

START = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class MemoryCounters:
    """An in-memory CounterStore on a test clock (counters only; enough for verifiers)."""

    clock: Clock
    values: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    reads: int = 0

    def _live(self, key: str) -> int:
        value, expires = self.values.get(key, (0, None))
        return 0 if expires is not None and expires <= self.clock() else value

    async def incr(self, key: str, amount: int = 1, *, ttl: timedelta | None = None) -> int:
        _, expires = self.values.get(key, (0, None))
        if not self._live(key) and ttl is not None:
            expires = self.clock() + ttl
        value = self._live(key) + amount
        self.values[key] = (value, expires)
        return value

    async def get(self, key: str) -> int:
        return self._live(key)

    async def get_many(self, keys: Sequence[str]) -> list[int]:
        self.reads += 1
        return [self._live(key) for key in keys]

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self.values.pop(key, None)

    async def set_value(self, key: str, value: str, *, ttl: timedelta | None = None) -> None:
        raise NotImplementedError

    async def get_value(self, key: str) -> str | None:
        raise NotImplementedError

    async def set_if_absent(self, key: str, value: str, *, ttl: timedelta) -> bool:
        raise NotImplementedError

    async def hit(self, key: str, *, limit: int, window: timedelta) -> RateDecision:
        raise NotImplementedError

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Issuer:
    """Signs tokens like the auth service and serves its key set (counting fetches)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.fetches = 0
        self.failing = False
        self.add_key("k1")

    def add_key(self, kid: str) -> None:
        self.keys[kid] = Ed25519PrivateKey.generate()

    async def jwks(self) -> str:
        self.fetches += 1
        if self.failing:
            raise Unavailable("auth", "Service auth is not available")
        keys = [
            {
                **OKPAlgorithm.to_jwk(key.public_key(), as_dict=True),
                "kid": kid,
                "alg": "EdDSA",
                "use": "sig",
            }
            for kid, key in self.keys.items()
        ]
        return orjson.dumps({"keys": keys}).decode()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "sub": "ann",
            "type": "customer",
            "iss": "micro",
            "name": "ann@example.com",
            "scopes": ["customer"],
            "metadata": {"plan": "free"},
            "sid": "s1",
            "iat": now,
            "exp": now + 3600,
            "jti": "j1",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        return jwt.encode(
            self.claims(**overrides), self.keys[kid], algorithm="EdDSA", headers={"kid": kid}
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(clock: Clock) -> Issuer:
    return Issuer(clock)


@pytest.fixture
def counters(clock: Clock) -> MemoryCounters:
    return MemoryCounters(clock)


@pytest.fixture
def authenticator(issuer: Issuer, counters: MemoryCounters, clock: Clock) -> JwtAuthenticator:
    return JwtAuthenticator(issuer.jwks, counters, clock=clock)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# JwtAuthenticator


async def test_valid_token_gives_its_account_with_the_session(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    account = await authenticator.authenticate(issuer.token())
    assert account == Account(
        id="ann",
        type="customer",
        issuer="micro",
        name="ann@example.com",
        scopes=("customer",),
        metadata={"plan": "free", "session": "s1"},
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"sub": None},
        {"sub": ""},
        {"exp": None},
        {"iat": None},
        {"type": None},
        {"scopes": "customer"},
        {"scopes": [1]},
        {"metadata": {"a": 1}},
        {"metadata": ["a"]},
        {"name": 5},
        {"sid": 5},
        {"exp": "tomorrow"},
        {"aud": "somebody"},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
async def test_malformed_claims_are_refused(
    authenticator: JwtAuthenticator, issuer: Issuer, overrides: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized) as caught:
        await authenticator.authenticate(issuer.token(**overrides))
    assert caught.value == Unauthorized("auth", "Unauthorized")


async def test_expired_token_is_refused_after_the_leeway(
    authenticator: JwtAuthenticator, issuer: Issuer, clock: Clock
) -> None:
    token = issuer.token()
    clock.advance(seconds=3600 + 29)
    await authenticator.authenticate(token)
    clock.advance(seconds=2)
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(token)


async def test_token_issued_in_the_future_is_refused(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    later = int(START.timestamp()) + 120
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(issuer.token(iat=later, exp=later + 3600))
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(issuer.token(nbf=later))


async def test_alg_none_is_refused(authenticator: JwtAuthenticator, issuer: Issuer) -> None:
    unsigned = f"{_b64({'alg': 'none', 'kid': 'k1'})}.{_b64(issuer.claims())}."
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(unsigned)


async def test_hmac_signed_with_the_public_key_is_refused(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    public = OKPAlgorithm.to_jwk(issuer.keys["k1"].public_key(), as_dict=True)["x"]
    forged = jwt.encode(issuer.claims(), public, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(forged)


async def test_token_signed_by_another_key_is_refused(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    stranger = Ed25519PrivateKey.generate()
    forged = jwt.encode(issuer.claims(), stranger, algorithm="EdDSA", headers={"kid": "k1"})
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(forged)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "Bearer x"])
async def test_garbage_is_refused(authenticator: JwtAuthenticator, token: str) -> None:
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(token)


async def test_key_set_is_fetched_once_and_reused(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    await asyncio.gather(*(authenticator.authenticate(issuer.token()) for _ in range(10)))
    assert issuer.fetches == 1


async def test_unknown_key_id_refetches_the_key_set_at_a_limited_rate(
    authenticator: JwtAuthenticator, issuer: Issuer, clock: Clock
) -> None:
    await authenticator.authenticate(issuer.token())
    clock.advance(seconds=11)
    issuer.add_key("k2")  # a rotation
    assert (await authenticator.authenticate(issuer.token("k2"))).id == "ann"
    assert issuer.fetches == 2
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(issuer.token("k1", iss="x")[:-2] + "xx")
        bogus = issuer.token("k2").split(".")
        header = _b64({"alg": "EdDSA", "kid": "made-up"})
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(".".join([header, bogus[1], bogus[2]]))
    assert issuer.fetches == 2  # made-up key ids within the interval fetch nothing


async def test_empty_key_set_is_fetched_again_as_soon_as_a_key_exists(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    signing = dict(issuer.keys)
    issuer.keys.clear()  # auth had no key yet when first asked (a first start)
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(
            jwt.encode(issuer.claims(), signing["k1"], "EdDSA", headers={"kid": "k1"})
        )
    issuer.keys.update(signing)
    assert (await authenticator.authenticate(issuer.token())).id == "ann"


async def test_key_set_is_refreshed_when_old(
    authenticator: JwtAuthenticator, issuer: Issuer, clock: Clock
) -> None:
    await authenticator.authenticate(issuer.token())
    clock.advance(minutes=11)
    await authenticator.authenticate(issuer.token())
    assert issuer.fetches == 2


async def test_key_set_unreachable_is_unavailable_and_fetched_at_a_limited_rate(
    authenticator: JwtAuthenticator, issuer: Issuer, clock: Clock
) -> None:
    issuer.failing = True
    for _ in range(3):
        with pytest.raises(Unavailable):
            await authenticator.authenticate(issuer.token())
    assert issuer.fetches == 1
    issuer.failing = False
    clock.advance(seconds=11)
    assert (await authenticator.authenticate(issuer.token())).id == "ann"


async def test_key_set_unreachable_later_keeps_the_old_one(
    authenticator: JwtAuthenticator, issuer: Issuer, clock: Clock
) -> None:
    await authenticator.authenticate(issuer.token())
    issuer.failing = True
    clock.advance(minutes=11)
    for _ in range(3):
        assert (await authenticator.authenticate(issuer.token())).id == "ann"
    assert issuer.fetches == 2


async def test_concurrent_calls_on_a_cold_start_fetch_once(
    authenticator: JwtAuthenticator, issuer: Issuer
) -> None:
    issuer.failing = True
    results = await asyncio.gather(
        *(authenticator.authenticate(issuer.token()) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results)
    assert issuer.fetches == 1


async def test_calls_during_a_slow_first_fetch_wait_for_it(
    issuer: Issuer, counters: MemoryCounters, clock: Clock
) -> None:
    released = asyncio.Event()

    async def slow_jwks() -> str:
        await released.wait()
        return await issuer.jwks()

    authenticator = JwtAuthenticator(slow_jwks, counters, clock=clock)
    calls = [asyncio.create_task(authenticator.authenticate(issuer.token())) for _ in range(3)]
    await asyncio.sleep(0.01)
    released.set()
    accounts = await asyncio.gather(*calls)
    assert [a.id for a in accounts] == ["ann", "ann", "ann"]
    assert issuer.fetches == 1


async def test_blocked_account_is_refused(
    authenticator: JwtAuthenticator, issuer: Issuer, counters: MemoryCounters
) -> None:
    token = issuer.token()
    await authenticator.authenticate(token)
    await counters.incr(blocked_key("ann"))
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(token)
    await counters.delete(blocked_key("ann"))
    await authenticator.authenticate(token)


async def test_revoked_session_is_refused_other_sessions_are_not(
    authenticator: JwtAuthenticator, issuer: Issuer, counters: MemoryCounters
) -> None:
    await counters.incr(revoked_session_key("s1"), ttl=timedelta(hours=1))
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(issuer.token(sid="s1"))
    assert (await authenticator.authenticate(issuer.token(sid="s2"))).id == "ann"


async def test_checks_cost_one_counter_read_and_none_for_services(
    authenticator: JwtAuthenticator, issuer: Issuer, counters: MemoryCounters
) -> None:
    await authenticator.authenticate(issuer.token())
    assert counters.reads == 1
    await counters.incr(blocked_key("svc"))
    service = issuer.token(sub="svc", type="service", scopes=["service"])
    assert (await authenticator.authenticate(service)).id == "svc"
    assert counters.reads == 1


# Rules


def rule(
    access: str = "grant",
    scope: str = "*",
    priority: int = 0,
    name: str = "*",
    endpoint: str = "*",
    kind: str = "*",
) -> RuleSpec:
    return RuleSpec("r", kind, name, endpoint, scope, access, priority)


ANN = Account(id="ann", type="customer", scopes=("customer",))
ADMIN = Account(id="admin", type="user", scopes=("admin",))
SERVICE = Account(id="billing", type="service", scopes=("service",))


@pytest.mark.parametrize(
    ("rules", "account", "allowed"),
    [
        ([], None, False),
        ([], ANN, False),
        ([rule()], ANN, True),
        ([rule()], None, False),
        ([rule(scope="")], None, True),
        ([rule(scope="admin")], ANN, False),
        ([rule(scope="admin")], ADMIN, True),
        ([rule(name="billing")], ANN, False),
        ([rule(name="customers")], ANN, True),
        ([rule(endpoint="Customers.Read")], ANN, False),
        ([rule(endpoint="Customers.Update")], ANN, True),
        ([rule(kind="api")], ANN, False),
        ([rule(kind="service")], ANN, True),
        ([rule(priority=1), rule("deny", priority=1)], ANN, False),
        ([rule("deny", priority=1), rule(priority=1)], ANN, False),
        ([rule(priority=2), rule("deny", priority=1)], ANN, True),
        ([rule(priority=1), rule("deny", priority=2)], ANN, False),
        ([rule(scope="", priority=1), rule("deny", scope="customer")], ANN, True),
        ([rule("deny", scope="admin", priority=9), rule()], ANN, True),
        ([rule("deny", scope="admin", priority=9), rule()], ADMIN, False),
        ([rule("nonsense")], ANN, False),
    ],
)
def test_rule_evaluation(rules: list[RuleSpec], account: Account | None, allowed: bool) -> None:
    assert is_allowed(rules, account, "service", "customers", "Customers.Update") is allowed


def test_refusal_is_unauthorized_for_anonymous_and_forbidden_for_accounts() -> None:
    with pytest.raises(Unauthorized) as anonymous:
        check_access([], None, "service", "x", "X.Y", error_id="x.y")
    assert anonymous.value == Unauthorized("x.y", "Unauthorized")
    with pytest.raises(Forbidden) as account:
        check_access([], ANN, "service", "x", "X.Y", error_id="x.y")
    assert account.value == Forbidden("x.y", "Forbidden")
    check_access([rule("deny", scope="", priority=9)], SERVICE, "service", "x", "X.Y", error_id="")


class RuleSource:
    def __init__(self, rules: Sequence[RuleSpec]) -> None:
        self.rules = list(rules)
        self.fetches = 0
        self.failing = False

    async def fetch(self) -> Sequence[RuleSpec]:
        self.fetches += 1
        await asyncio.sleep(0)
        if self.failing:
            raise Unavailable("auth", "down")
        return list(self.rules)


async def test_cached_rules_fetch_once_per_ttl(clock: Clock) -> None:
    source = RuleSource([rule()])
    rules = CachedRules(source.fetch, timedelta(seconds=5), clock=clock)
    await asyncio.gather(*(rules.verify(ANN, "customers", "Customers.Read") for _ in range(10)))
    assert source.fetches == 1
    source.rules = []
    clock.advance(seconds=6)
    with pytest.raises(Forbidden) as caught:
        await rules.verify(ANN, "customers", "Customers.Read")
    assert caught.value == Forbidden("customers.read", "Forbidden")
    assert source.fetches == 2


async def test_invalidate_makes_the_next_call_refetch(clock: Clock) -> None:
    source = RuleSource([])
    rules = CachedRules(source.fetch, clock=clock)
    with pytest.raises(Unauthorized):
        await rules.verify(None, "customers", "Customers.Read")
    source.rules = [rule(scope="")]
    rules.invalidate()
    await rules.verify(None, "customers", "Customers.Read")


async def test_cached_rules_keep_the_old_copy_when_a_refresh_fails(clock: Clock) -> None:
    source = RuleSource([rule()])
    rules = CachedRules(source.fetch, timedelta(seconds=5), clock=clock)
    await rules.verify(ANN, "customers", "Customers.Read")
    source.failing = True
    clock.advance(seconds=6)
    await rules.verify(ANN, "customers", "Customers.Read")
    await rules.verify(ANN, "customers", "Customers.Read")
    assert source.fetches == 2  # retried one ttl later, not on every call


async def test_cached_rules_without_any_copy_are_unavailable(clock: Clock) -> None:
    source = RuleSource([])
    source.failing = True
    rules = CachedRules(source.fetch, clock=clock)
    with pytest.raises(Unavailable):
        await rules.verify(ANN, "customers", "Customers.Read")


async def test_service_accounts_pass_without_fetching_rules(clock: Clock) -> None:
    source = RuleSource([])
    rules = CachedRules(source.fetch, clock=clock)
    await rules.verify(SERVICE, "billing", "Billing.Charge")
    assert source.fetches == 0


# ServiceTokenSource


class TokenIssuer:
    def __init__(self, clock: Clock, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.issued = 0
        self.failing = False

    async def fetch(self) -> tuple[str, datetime]:
        await asyncio.sleep(0)
        if self.failing:
            raise Unavailable("auth", "down")
        self.issued += 1
        return f"token-{self.issued}", self.clock() + self.lifetime


async def test_service_token_is_reused_until_most_of_its_lifetime_is_over(clock: Clock) -> None:
    tokens = TokenIssuer(clock)
    source = ServiceTokenSource(tokens.fetch, clock=clock)
    assert await source.token() == "token-1"
    clock.advance(minutes=47)
    assert await source.token() == "token-1"
    clock.advance(minutes=2)  # past 80% of the hour
    assert await source.token() == "token-2"


async def test_service_token_is_fetched_once_however_many_calls_wait(clock: Clock) -> None:
    tokens = TokenIssuer(clock)
    source = ServiceTokenSource(tokens.fetch, clock=clock)
    got = await asyncio.gather(*(source.token() for _ in range(20)))
    assert set(got) == {"token-1"}
    assert tokens.issued == 1


async def test_failed_renewal_keeps_a_valid_token_and_retries_later(clock: Clock) -> None:
    tokens = TokenIssuer(clock)
    source = ServiceTokenSource(tokens.fetch, clock=clock)
    await source.token()
    clock.advance(minutes=50)
    tokens.failing = True
    assert await source.token() == "token-1"
    tokens.failing = False
    assert await source.token() == "token-1"  # not retried before retry_after
    clock.advance(seconds=6)
    assert await source.token() == "token-2"


async def test_failed_fetch_without_a_valid_token_raises(clock: Clock) -> None:
    tokens = TokenIssuer(clock)
    tokens.failing = True
    source = ServiceTokenSource(tokens.fetch, clock=clock)
    with pytest.raises(Unavailable):
        await source.token()


def test_renew_at_must_be_a_fraction() -> None:
    async def never() -> tuple[str, datetime]:
        raise AssertionError

    with pytest.raises(ValueError, match="renew_at"):
        ServiceTokenSource(never, renew_at=1.5)
