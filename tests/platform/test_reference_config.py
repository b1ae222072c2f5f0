"""The reference's config file loads as it is: its keys reach our services' settings, and
the keys that mean nothing here are named in one warning (tests/data/reference_config.json
has every key the reference read, with invented values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from m3o.cli import app
from m3o.runtime.config import Config, ConfigError, build_config
from m3o.runtime.config.stored import ConfigStore
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.destinations import DiscordWebhook, SlackChannel, destinations_from
from m3o.services.balance.settings import settings_from as balance_settings
from m3o.services.emails.sendgrid import SendgridTransport
from m3o.services.emails.service import make_transport
from m3o.services.endtoend.settings import settings_from as endtoend_settings
from m3o.services.oauth.service import provider_settings
from m3o.services.signup.settings import settings_from as signup_settings
from m3o.services.stripe.settings import settings_from as stripe_settings
from m3o.services.usage.counters import free_quota

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference_config.json"

IGNORED = {
    "alert.ga_property_id",
    "signup.oauth.client_id",
    "signup.oauth.client_secret",
    "signup.sendgrid.invite_template_id",
    # the platform has one Redis: redis.address names another server
    "usage.redis.address",
}


def reference() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(REFERENCE.read_text())
    return document


def assert_every_section_is_read(config: Config) -> None:
    # alert
    slack, discord = destinations_from(config.alert)
    assert isinstance(slack, SlackChannel)
    assert isinstance(discord, DiscordWebhook)
    assert config.alert.blocklist == ["fake-noisy-category"]
    assert config.alert.slack.channel == "fake-alerts"
    # api
    assert config.api.blocklist_enabled is False
    # balance: the reference's fraction is our percent
    assert balance_settings(config).margin == 20
    # billing: the reference's shorthand
    assert config.billing.tiers["pro"].stripe_price_id == "price_fake_pro"
    # emails: a SendGrid key means SendGrid, the reference's only transport; signup's
    # SendGrid templates are the emails service's
    assert isinstance(make_transport(config), SendgridTransport)
    assert config.emails.email_from == "Fake Sender <noreply@example.invalid>"
    assert config.emails.ip_pool_name == "fake-pool"
    assert config.emails.sendgrid.templates == {
        "verification": "d-fake-verification",
        "recovery": "d-fake-recovery",
        "welcome": "d-fake-welcome",
    }
    # endtoend
    assert endtoend_settings(config).email == "fake-endtoend@example.invalid"
    # mixpanel
    ignore_list = ["ignored-one@example.invalid", "ignored-two@example.invalid"]
    assert config.mixpanel.ignore_list == ignore_list
    assert config.mixpanel.project == "fake-mixpanel-project"
    assert config.mixpanel.secret.get_secret_value() == "fake-mixpanel-secret"
    # oauth, with signup.oauth.google's secret where oauth.google left it empty
    google = provider_settings(config, "google")
    assert google.app.client_id == "fake-google-client"
    assert google.app.client_secret == "fake-google-secret"
    assert google.test_app.client_id == "fake-google-test-client"
    github = provider_settings(config, "github")
    assert github.app.redirect_url == "https://console.example.invalid/github-login"
    # redis, with the per-service blocks' credentials
    assert config.redis.connection_url() == (
        "redis://fake-redis-user:fake-redis-password@redis.example.invalid:6379/0"
    )
    # signup
    signup = signup_settings(config)
    assert signup.policy.may_sign_up("ann@example.invalid")
    assert not signup.policy.may_sign_up("ann@example.com")
    assert not signup.policy.may_sign_up("ann@spam.example.invalid")
    assert not signup.policy.gets_onboarding("quiet@example.invalid")
    assert signup.email_from == "Fake Team <support@example.invalid>"
    assert signup.promo_credit == 20_000
    assert signup.promo_message == "A fake welcome credit"
    assert signup.welcome_delay.total_seconds() == 12 * 3600
    # status: names the platform does not define are dropped by the status service
    assert "broker" in config.status.services
    assert "usage" in config.status.services
    # stripe
    stripe = stripe_settings(config)
    assert stripe.api_key == "sk_test_fake"
    assert stripe.signing_secrets == ("whsec_fake_live", "whsec_fake_test")
    assert stripe.success_url == "https://console.example.invalid/account/billing"
    # usage
    assert free_quota(config, "pro") == 500_000
    assert config.usage.usage_caps["free"]["function$Function_Deploy"] == 0
    # v1
    assert config.v1.rate_limits == {"business": 2000, "free": 10, "pro": 200, "solo": 100}


def test_the_reference_file_loads_and_every_section_is_read() -> None:
    with capture_logs() as logs:
        config = build_config(reference(), {})

    assert_every_section_is_read(config)
    [warning] = [log for log in logs if log["event"] == "config.reference_keys_ignored"]
    assert warning["log_level"] == "warning"
    assert set(warning["ignored"]) == IGNORED


async def test_the_store_keeps_our_keys_and_names_the_ignored_ones(
    sessions: SessionFactory,
) -> None:
    store = ConfigStore(sessions)

    ignored = await store.set("micro", reference())

    assert set(ignored) == IGNORED
    stored = await store.get("micro")
    assert "redis" not in stored["v1"]
    assert "sendgrid" not in stored["signup"]
    with capture_logs() as logs:
        config = await store.load({})
    assert_every_section_is_read(config)
    assert not [log for log in logs if log["event"] == "config.reference_keys_ignored"]


async def test_a_reference_path_can_be_set_on_its_own(sessions: SessionFactory) -> None:
    store = ConfigStore(sessions)

    ignored = await store.set(
        "micro.signup.sendgrid", {"template_id": "d-one", "invite_template_id": "d-two"}
    )

    assert ignored == ("signup.sendgrid.invite_template_id",)
    assert (await store.load({})).emails.sendgrid.templates == {"verification": "d-one"}


def test_per_service_redis_names_the_server_when_redis_does_not() -> None:
    document = {"v1": {"redis": {"address": "cache.example.invalid:6380", "user": "u"}}}

    config = build_config(document, {})

    assert config.redis.connection_url() == "rediss://u@cache.example.invalid:6380/0"


def test_per_service_redis_that_agrees_with_redis_is_not_reported() -> None:
    document = {
        "redis": {"url": "redis://cache.example.invalid:6379/2"},
        "balance": {"redis": {"address": "cache.example.invalid:6379"}},
        "usage": {"redis": {"address": "elsewhere.example.invalid:6379"}},
    }

    with capture_logs() as logs:
        config = build_config(document, {})

    assert config.redis.connection_url() == "redis://cache.example.invalid:6379/2"
    [warning] = logs
    assert warning["ignored"] == ["usage.redis.address"]


def test_a_document_without_reference_keys_warns_nothing() -> None:
    with capture_logs() as logs:
        build_config({"v1": {"rate-limits": {"free": 5}}}, {})

    assert logs == []


@pytest.mark.parametrize(("margin", "percent"), [(0.05, 5), (0.5, 50), (0, 0), (30, 30)])
def test_margin_takes_the_reference_fraction_or_our_percent(margin: float, percent: int) -> None:
    assert build_config({"balance": {"margin": margin}}, {}).balance.margin == percent


def test_a_margin_fraction_that_is_no_whole_percent_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"balance\.margin: a fraction must come to a whole"):
        build_config({"balance": {"margin": 0.125}}, {})


def test_an_explicit_transport_wins_over_the_sendgrid_key() -> None:
    document = {"emails": {"transport": "smtp", "sendgrid": {"api_key": "SG.fake"}}}

    assert build_config(document, {}).emails.transport == "smtp"


def test_config_set_prints_one_warning_naming_the_ignored_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runner = CliRunner()

    stored = runner.invoke(
        app, ["config", "set", "micro", REFERENCE.read_text(), "--data-dir", str(data_dir)]
    )

    assert stored.exit_code == 0, stored.output
    [line] = stored.stderr.splitlines()
    assert line.startswith("warning: config.reference_keys_ignored")
    assert {key.strip() for key in line.split(": ")[-1].split(",")} == IGNORED
    shown = runner.invoke(app, ["config", "get", "micro.emails", "--data-dir", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["sendgrid"]["templates"]["welcome"] == "d-fake-welcome"
