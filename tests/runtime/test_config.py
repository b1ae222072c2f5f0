"""Typed configuration: defaults, validation, durations, secrets, environment, the store."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from m3o.runtime.config import (
    Config,
    ConfigError,
    RedisConfig,
    build_config,
    format_duration,
    parse_duration,
    parse_value,
)
from m3o.runtime.config.stored import ConfigStore
from m3o.runtime.store import SessionFactory

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.json"


def load(document: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    return build_config(document, env or {})


def refusal(document: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(document, env)
    return str(caught.value)


def keys_of(document: Any, prefix: str = "") -> set[str]:
    if not isinstance(document, dict):
        return set()
    found: set[str] = set()
    for key, value in document.items():
        found.add(prefix + key)
        found |= keys_of(value, f"{prefix}{key}.")
    return found


# --- defaults ------------------------------------------------------------------------------


def test_empty_document_gives_the_reference_defaults() -> None:
    config = load({})

    assert config.usage.quotas == {
        "free": 10_000,
        "solo": 100_000,
        "pro": 1_000_000,
        "business": 10_000_000,
    }
    assert config.usage.usage_caps == {}
    assert config.v1.rate_limits == {"free": 1000, "solo": 1000, "pro": 1000, "business": 10_000}
    assert config.v1.fail_open_free is False
    assert config.signup.promo_credit == 10_000
    assert config.signup.welcome_delay == timedelta(hours=24)
    assert config.stripe.currency == "usd"
    assert config.stripe.min_amount == 1000
    assert config.balance.margin == 0
    assert "free" in config.billing.tiers
    assert config.alert.slack.channel == "alerts"
    assert config.oauth.google.test is False
    assert "customers" in config.status.services


def test_empty_document_gives_our_sections_defaults() -> None:
    config = load({})

    assert config.database.url == ""
    assert config.database.resolved_url(Path("/data")) == "sqlite+aiosqlite:////data/m3o.db"
    assert (config.server.host, config.server.port, config.server.grpc_port) == (
        "127.0.0.1",
        8080,
        9090,
    )
    assert config.server.service_address("usage") == "usage:9090"
    assert config.server.base_url == "http://127.0.0.1:8080"
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.auth.access_token_ttl == timedelta(hours=1)
    assert config.auth.customer_token_ttl == timedelta(days=30)
    assert config.auth.refresh_token_ttl == timedelta(days=90)
    assert config.auth.service_secret.get_secret_value() == ""


def test_example_file_loads_and_equals_the_defaults() -> None:
    example = json.loads(EXAMPLE.read_text())

    assert load(example) == Config()


def test_example_file_lists_every_key_with_blank_secrets() -> None:
    example = json.loads(EXAMPLE.read_text())

    assert keys_of(example) == keys_of(Config().dump(reveal=True))
    assert Config().dump() == Config().dump(reveal=True)  # nothing secret is filled in


# --- keys and values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"signup": {"promoCredit": 5}, "v1": {"rate-limits": {"pro": 7}}},
        {"signup": {"promo_credit": 5}, "v1": {"rate_limits": {"pro": 7}}},
    ],
    ids=["reference-spelling", "field-names"],
)
def test_reference_key_spellings_and_field_names_are_both_accepted(
    document: dict[str, Any],
) -> None:
    config = load(document)

    assert config.signup.promo_credit == 5
    assert config.v1.rate_limits["pro"] == 7


def test_dump_uses_the_reference_key_spellings() -> None:
    dumped = Config().dump()

    assert "promoCredit" in dumped["signup"]
    assert "ignoreList" in dumped["mixpanel"]
    assert "rate-limits" in dumped["v1"]


def test_a_partial_tier_map_keeps_the_other_tiers_defaults() -> None:
    config = load({"usage": {"quotas": {"free": 5}}, "v1": {"rate-limits": {"gold": 3}}})

    assert config.usage.quotas == {
        "free": 5,
        "solo": 100_000,
        "pro": 1_000_000,
        "business": 10_000_000,
    }
    assert config.v1.rate_limits["gold"] == 3
    assert config.v1.rate_limits["business"] == 10_000


def test_reference_shorthands_are_accepted() -> None:
    config = load(
        {
            "billing": {"tiers": {"pro": "price_123"}},
            "status": {"services": "customers, v1,usage"},
            "mixpanel": {"ignoreList": ""},
        }
    )

    assert config.billing.tiers["pro"].stripe_price_id == "price_123"
    assert config.billing.tiers["free"].stripe_price_id == ""  # free always exists
    assert config.status.services == ["customers", "v1", "usage"]
    assert config.mixpanel.ignore_list == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"stripee": {}}, "stripee: unknown key"),
        ({"stripe": {"api_kye": "x"}}, "stripe.api_kye: unknown key"),
        ({"oauth": {"google": {"secret": "x"}}}, "oauth.google.secret: unknown key"),
        ({"billing": {"tiers": {"pro": {"prise": "$5"}}}}, "billing.tiers.pro.prise: unknown key"),
    ],
)
def test_unknown_keys_are_refused_naming_the_key(document: dict[str, Any], expected: str) -> None:
    assert expected in refusal(document)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"usage": {"quotas": {"free": "lots"}}},
            "usage.quotas.free: Input should be a valid integer",
        ),
        (
            {"usage": {"quotas": {"pro": -1}}},
            "usage.quotas.pro: Input should be greater than or equal to 0",
        ),
        ({"signup": {"promoCredit": 1.5}}, "signup.promoCredit: Input should be a valid integer"),
        ({"signup": {"welcome_delay": "a day"}}, "signup.welcome_delay: expected a duration"),
        (
            {"signup": {"block_list": ["(unclosed"]}},
            "signup.block_list: '(unclosed' is not a regular expression",
        ),
        (
            {"signup": {"allow_list": ["@ok\\.com", "[a-"]}},
            "signup.allow_list: '[a-' is not a regular expression",
        ),
        ({"balance": {"margin": 101}}, "balance.margin: Input should be less than or equal to 100"),
        (
            {"usage": {"usage_caps": {"free": {"db_Create": 1}}}},
            "usage.usage_caps: free.db_Create: keys are '<api>$<Endpoint>'",
        ),
        (
            {"server": {"service_address_template": "usage:9090"}},
            "server.service_address_template: must contain '{service}'",
        ),
        ({"server": {"log_level": "chatty"}}, "server.log_level: Input should be"),
        (
            {"api": {"trusted_proxies": ["10.0.0.0/8", "ingress"]}},
            "api.trusted_proxies: 'ingress' is not an IP network (10.0.0.0/8)",
        ),
        (
            {"emails": {"transport": "pigeon"}},
            "emails.transport: Input should be 'smtp' or 'sendgrid'",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(document: dict[str, Any], expected: str) -> None:
    assert expected in refusal(document)


def test_trusted_proxies_come_from_the_environment_as_a_list_or_comma_separated() -> None:
    listed = load({}, {"M3O_API__TRUSTED_PROXIES": '["10.0.0.0/8", "fd00::/8"]'})
    separated = load({}, {"M3O_API__TRUSTED_PROXIES": "10.0.0.0/8,192.168.0.0/16"})
    assert listed.api.trusted_proxies == ["10.0.0.0/8", "fd00::/8"]
    assert separated.api.trusted_proxies == ["10.0.0.0/8", "192.168.0.0/16"]
    assert load({}).api.trusted_proxies == []


def test_every_bad_key_is_named_and_the_first_is_the_error_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"stripe": {"min_amount": "x"}, "usage": {"quotas": {"free": "y"}}})

    message = str(caught.value)
    assert "stripe.min_amount: " in message
    assert "usage.quotas.free: " in message
    assert caught.value.path in ("stripe.min_amount", "usage.quotas.free")


def test_log_level_is_case_insensitive_and_currency_lower_cased() -> None:
    config = load({"server": {"log_level": "DEBUG"}, "stripe": {"currency": "EUR"}})

    assert config.server.log_level == "debug"
    assert config.stripe.currency == "eur"


def test_config_is_immutable() -> None:
    config = load({})

    with pytest.raises(ValueError, match="frozen"):
        config.stripe.currency = "eur"  # type: ignore[misc]


def test_oauth_test_credentials_are_selected_by_request_or_flag() -> None:
    google = {"client_id": "live", "test_client_id": "test"}
    config = load({"oauth": {"google": google, "github": {**google, "test": True}}})

    assert config.oauth.google.credentials(test=False)[0] == "live"
    assert config.oauth.google.credentials(test=True)[0] == "test"
    assert config.oauth.github.credentials(test=False)[0] == "test"


@pytest.mark.parametrize(
    ("redis", "expected"),
    [
        ({}, "redis://127.0.0.1:6379/0"),
        ({"address": "cache:6380"}, "redis://cache:6380/0"),
        ({"address": "cache:6380", "secure": True}, "rediss://cache:6380/0"),
        ({"username": "svc", "password": "p@ss"}, "redis://svc:p%40ss@127.0.0.1:6379/0"),
        ({"url": "redis://u:pw@h:1/2", "address": "x:3"}, "redis://u:pw@x:3/2"),
    ],
)
def test_redis_connection_url_combines_url_address_credentials_and_tls(
    redis: dict[str, Any], expected: str
) -> None:
    assert RedisConfig.model_validate(redis).connection_url() == expected


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("5m", timedelta(minutes=5)),
        ("30s", timedelta(seconds=30)),
        ("300ms", timedelta(milliseconds=300)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("250us", timedelta(microseconds=250)),
        ("0", timedelta(0)),
        ("90", timedelta(seconds=90)),
        (90, timedelta(seconds=90)),
        (timedelta(seconds=3), timedelta(seconds=3)),
    ],
)
def test_durations_parse(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["", "5 minutes", "h", "5x", "-1s", -1, 1.5, True, None])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=24), "24h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (timedelta(0), "0s"),
        (timedelta(microseconds=7), "7us"),
    ],
)
def test_durations_format_compactly_and_round_trip(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_duration_fields_accept_text_and_seconds() -> None:
    config = load({"signup": {"welcome_delay": "1h"}, "alert": {"collapse_window": 60}})

    assert config.signup.welcome_delay == timedelta(hours=1)
    assert config.alert.collapse_window == timedelta(minutes=1)
    assert config.dump()["signup"]["welcome_delay"] == "1h"


# --- secrets -------------------------------------------------------------------------------

SECRETS: dict[str, Any] = {
    "stripe": {"api_key": "sk_live_abc", "currency": "usd"},
    "v1": {"key_pepper": "pepper-xyz"},
    "database": {"url": "postgresql://m3o:db-pass@db:5432/m3o"},
    "redis": {"url": "redis://:redis-pass@cache:6379/0"},
}


def test_secrets_are_redacted_in_the_dump() -> None:
    dumped = load(SECRETS).dump()

    assert dumped["stripe"]["api_key"] == "[redacted]"
    assert dumped["stripe"]["signing_secret"] == ""  # blank: nothing to hide
    assert dumped["stripe"]["currency"] == "usd"
    assert dumped["v1"]["key_pepper"] == "[redacted]"
    assert dumped["database"]["url"] == "postgresql://m3o:[redacted]@db:5432/m3o"
    assert dumped["redis"]["url"] == "redis://:[redacted]@cache:6379/0"
    for secret in ("sk_live_abc", "pepper-xyz", "db-pass", "redis-pass"):
        assert secret not in json.dumps(dumped)


def test_secrets_are_revealed_when_asked() -> None:
    config = load(SECRETS)

    dumped = config.dump(reveal=True)
    assert dumped["stripe"]["api_key"] == "sk_live_abc"
    assert dumped["database"]["url"] == "postgresql://m3o:db-pass@db:5432/m3o"
    assert config.value_at("micro.stripe.api_key", reveal=True) == "sk_live_abc"
    assert config.stripe.api_key.get_secret_value() == "sk_live_abc"


def test_secrets_never_appear_in_repr_or_str() -> None:
    config = load(SECRETS)

    assert "sk_live_abc" not in repr(config)
    assert "pepper-xyz" not in str(config)


def test_value_at_reads_a_path_of_the_effective_config() -> None:
    config = load(SECRETS)

    assert config.value_at("micro.usage.quotas") == Config().usage.quotas
    assert config.value_at("micro.v1.rate_limits.business") == 10_000
    assert config.value_at("micro.stripe") == config.dump()["stripe"]
    assert config.value_at("micro.usage.quotas.platinum") is None
    with pytest.raises(ConfigError, match=r"stripe\.apikey: unknown key"):
        config.value_at("micro.stripe.apikey")


# --- environment ---------------------------------------------------------------------------


def test_env_overrides_at_several_depths_with_json_and_string_values() -> None:
    config = load(
        {},
        {
            "M3O_STRIPE__API_KEY": "sk_test_1",
            "M3O_USAGE__QUOTAS__FREE": "5",
            "M3O_SERVER__PORT": "9000",
            "M3O_SERVER__LOG_JSON": "false",
            "M3O_SERVER__HOST": "0.0.0.0",
            "M3O_ALERT__BLOCKLIST": '["noisy"]',
            "M3O_ALERT__SLACK__ENABLED": "true",
            "M3O_SIGNUP__WELCOME_DELAY": "1h",
            "M3O_ENDTOEND__INTERVAL": "600",
        },
    )

    assert config.stripe.api_key.get_secret_value() == "sk_test_1"
    assert config.usage.quotas["free"] == 5
    assert config.usage.quotas["pro"] == 1_000_000
    assert config.server.port == 9000
    assert config.server.log_json is False
    assert config.server.host == "0.0.0.0"
    assert config.alert.blocklist == ["noisy"]
    assert config.alert.slack.enabled is True
    assert config.signup.welcome_delay == timedelta(hours=1)
    assert config.endtoend.interval == timedelta(minutes=10)


def test_env_names_match_aliases_and_field_names_case_insensitively() -> None:
    config = load(
        {},
        {
            "M3O_V1__RATE_LIMITS__PRO": "7",
            "M3O_SIGNUP__PROMOCREDIT": "42",
            "M3O_mixpanel__IgnoreList": "a@x.com,b@x.com",
        },
    )

    assert config.v1.rate_limits["pro"] == 7
    assert config.signup.promo_credit == 42
    assert config.mixpanel.ignore_list == ["a@x.com", "b@x.com"]


def test_env_string_keys_keep_text_that_looks_like_json() -> None:
    config = load(
        {}, {"M3O_AUTH__ADMIN_PASSWORD": "123456", "M3O_OAUTH__GOOGLE__CLIENT_ID": "true"}
    )

    assert config.auth.admin_password.get_secret_value() == "123456"
    assert config.oauth.google.client_id == "true"


def test_env_overrides_the_stored_document_and_deeper_variables_win() -> None:
    document = {"usage": {"quotas": {"free": 1, "solo": 2}}, "stripe": {"currency": "gbp"}}

    config = load(
        document,
        {"M3O_USAGE__QUOTAS": '{"free": 10, "pro": 30}', "M3O_USAGE__QUOTAS__PRO": "31"},
    )

    assert config.usage.quotas == {"free": 10, "solo": 100_000, "pro": 31, "business": 10_000_000}
    assert config.stripe.currency == "gbp"


def test_env_map_keys_match_existing_keys_case_insensitively() -> None:
    document = {"billing": {"tiers": {"Gold": {"name": "Gold"}}}}

    config = load(
        document, {"M3O_BILLING__TIERS__GOLD__PRICE": "$9", "M3O_BILLING__TIERS__NEW": "p"}
    )

    assert config.billing.tiers["Gold"].price == "$9"
    assert config.billing.tiers["new"].stripe_price_id == "p"


def test_env_without_double_underscore_is_not_config() -> None:
    config = load({}, {"M3O_TEST_POSTGRES": "x", "M3O_ADMIN_PASSWORD": "y", "PATH": "/bin"})

    assert config == Config()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"M3O_STRIPEE__API_KEY": "x"}, "M3O_STRIPEE__API_KEY: STRIPEE: unknown key"),
        ({"M3O_STRIPE__APIKEY": "x"}, "M3O_STRIPE__APIKEY: stripe.APIKEY: unknown key"),
        ({"M3O_STRIPE__CURRENCY__X": "x"}, "M3O_STRIPE__CURRENCY__X: stripe.currency.X: "),
        ({"M3O_STRIPE____X": "x"}, "M3O_STRIPE____X: empty level"),
        (
            {"M3O_USAGE__QUOTAS__FREE": "many"},
            "usage.quotas.free: Input should be a valid integer, unable to parse string as an "
            "integer (from M3O_USAGE__QUOTAS__FREE)",
        ),
    ],
)
def test_bad_env_overrides_are_refused_naming_the_variable(
    env: dict[str, str], expected: str
) -> None:
    assert expected in refusal({}, env)


def test_parse_value_keeps_text_for_string_keys_and_parses_json_for_others() -> None:
    assert parse_value("micro.stripe.api_key", "12345") == "12345"
    assert parse_value("micro.usage.quotas.free", "12345") == 12345
    assert parse_value("micro.usage.quotas", '{"free": 1}') == {"free": 1}
    assert parse_value("micro.signup.welcome_delay", "24h") == "24h"


# --- the config store (SQLite and PostgreSQL) ----------------------------------------------


async def test_store_get_is_none_when_nothing_is_stored(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)

    assert await store.get("micro") is None
    assert await store.get("micro.usage.quotas") is None
    assert await store.load({}) == Config()


async def test_store_accepts_the_example_document(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)
    example = json.loads(EXAMPLE.read_text())

    await store.set("micro", example)

    assert await store.get("micro") == example
    assert await store.load({}) == Config()


async def test_store_sets_and_gets_a_sub_path(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)
    await store.set("micro", {"stripe": {"currency": "eur"}})

    await store.set("micro.usage.quotas", {"free": 5000})
    await store.set("micro.alert.slack.channel", "ops")

    assert await store.get("micro.usage.quotas") == {"free": 5000}
    assert await store.get("micro.usage.quotas.free") == 5000
    assert await store.get("micro.usage.quotas.pro") is None  # stored, not effective
    assert await store.get("micro") == {
        "stripe": {"currency": "eur"},
        "usage": {"quotas": {"free": 5000}},
        "alert": {"slack": {"channel": "ops"}},
    }
    config = await store.load({})
    assert config.usage.quotas["free"] == 5000
    assert config.usage.quotas["pro"] == 1_000_000
    assert config.alert.slack.channel == "ops"
    assert config.stripe.currency == "eur"


async def test_store_keeps_one_spelling_of_each_key(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)

    await store.set("micro.v1.rate_limits.pro", 5)
    await store.set("micro.v1", {"rate_limits": {"pro": 6}, "key_pepper": "p"})
    await store.set("micro.signup.promo_credit", 7)

    assert await store.get("micro") == {
        "v1": {"rate-limits": {"pro": 6}, "key_pepper": "p"},
        "signup": {"promoCredit": 7},
    }
    assert await store.get("micro.v1.rate_limits") == {"pro": 6}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("micro.usage.quotas.free", "lots", "usage.quotas.free: Input should be a valid integer"),
        (
            "micro.usage.quotas",
            {"free": "lots"},
            "usage.quotas.free: Input should be a valid integer",
        ),
        ("micro.stripe", {"api_kye": "x"}, "stripe.api_kye: unknown key"),
        ("micro.stripe.api_kye", "x", "stripe.api_kye: unknown key"),
        ("micro.stripe.currency.code", "x", "stripe.currency.code: stripe.currency has no keys"),
        ("micro", ["not", "an", "object"], "micro: the config document must be a JSON object"),
        ("config.usage", {}, "config paths start with 'micro'"),
        ("micro..usage", {}, "empty key"),
    ],
)
async def test_store_refuses_bad_documents_and_writes_nothing(
    sessions: SessionFactory, path: str, value: Any, expected: str
) -> None:
    store = ConfigStore(sessions)
    await store.set("micro.usage.quotas.free", 1)

    with pytest.raises(ConfigError) as caught:
        await store.set(path, value)

    assert expected in str(caught.value)
    assert await store.get("micro") == {"usage": {"quotas": {"free": 1}}}


async def test_store_load_applies_env_over_the_stored_document(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)
    await store.set("micro.stripe", {"currency": "eur", "min_amount": 500})

    config = await store.load({"M3O_STRIPE__MIN_AMOUNT": "2000", "M3O_STRIPE__API_KEY": "sk"})

    assert config.stripe.currency == "eur"
    assert config.stripe.min_amount == 2000
    assert config.stripe.api_key.get_secret_value() == "sk"


async def test_store_delete_restores_defaults(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)
    await store.set("micro.usage.quotas.free", 1)
    await store.set("micro.stripe.currency", "eur")

    assert await store.delete("micro.usage.quotas") is True
    assert await store.delete("micro.usage.quotas") is False

    assert await store.get("micro") == {"usage": {}, "stripe": {"currency": "eur"}}
    assert (await store.load({})).usage.quotas["free"] == 10_000
    assert await store.delete("micro") is True
    assert await store.get("micro") == {}


async def test_store_show_redacts_secrets_unless_asked(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)
    await store.set("micro.stripe.api_key", "sk_live_1")
    env = {"M3O_V1__KEY_PEPPER": "pep"}

    shown = await store.show("micro.stripe", env)
    assert shown["api_key"] == "[redacted]"
    assert shown["currency"] == "usd"
    assert await store.show("micro.v1.key_pepper", env) == "[redacted]"
    assert await store.show("micro.v1.key_pepper", env, reveal=True) == "pep"
    assert await store.show("micro.stripe.api_key", env, reveal=True) == "sk_live_1"


async def test_store_concurrent_writes_to_different_paths_all_survive(
    sessions: SessionFactory,
) -> None:
    store = ConfigStore(sessions)
    tiers = ["free", "solo", "pro", "business", "gold", "silver"]

    await asyncio.gather(*(store.set(f"micro.usage.quotas.{t}", i) for i, t in enumerate(tiers)))

    assert await store.get("micro.usage.quotas") == {t: i for i, t in enumerate(tiers)}


def test_every_key_of_every_section_is_documented() -> None:
    undocumented: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            if not info.description:
                undocumented.append(prefix + name)
            nested = info.annotation
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                walk(nested, f"{prefix}{name}.")
            elif get_origin(nested) is dict and issubclass_model(get_args(nested)[1]):
                walk(get_args(nested)[1], f"{prefix}{name}.*.")

    walk(Config, "")
    assert undocumented == []


def issubclass_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
