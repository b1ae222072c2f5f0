"""Typed configuration: one section model per area, the config store, environment overrides.

The configuration is one JSON document, stored in the config store under the root name
``micro`` (``m3o config set micro "$(cat config.example.json)"``). Each top-level key is a
section (``usage``, ``stripe``, ``v1``, ...) validated by a pydantic model; every key has a
default, so an empty document is a valid configuration. Unknown keys are refused (a typo
never passes silently) and keys keep the reference's JSON spelling where it had one
(``promoCredit``, ``ignoreList``, ``rate-limits``); the Python field name is accepted too.

Paths name a part of the document: ``micro`` is the whole document, ``micro.usage.quotas``
one part of it. :class:`ConfigStore` reads and writes parts; every write validates the
whole resulting document first.

Environment variables override the stored document:
``M3O_<SECTION>__<KEY>[__<SUBKEY>...]=value``. Levels are separated by a double
underscore; section and key names match field names and JSON keys case-insensitively
(``M3O_V1__RATE_LIMITS__PRO`` sets ``v1.rate-limits.pro``); keys of free-form maps (tiers)
match an existing key case-insensitively, else are lower-cased. The value is parsed as JSON
when it parses, else taken as a string; a string-typed key always takes the text as is (a
numeric password stays a string). Variables beginning ``M3O_`` without a double underscore
(``M3O_TEST_POSTGRES``) are not config. The environment is always passed in;
:func:`process_environment` is the one place that reads ``os.environ``, for the CLI.

Durations are written ``"24h"``, ``"5m"``, ``"30s"``, ``"300ms"`` (Go's notation, plus
``d`` for days) or as whole seconds, and read as :class:`~datetime.timedelta`. Secrets are
``SecretStr``: they never appear in ``repr``, logs or :meth:`Config.dump` unless
``reveal=True``; passwords inside database and Redis URLs are masked the same way.

Every problem raises :class:`ConfigError`, whose message names the bad key:
``usage.quotas.free: Input should be a valid integer``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import quote, urlsplit, urlunsplit

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from m3o.runtime.config_tables import config_documents
from m3o.runtime.store import SessionFactory, sqlite_url, transaction

__all__ = [
    "REDACTED",
    "ROOT",
    "AlertConfig",
    "ApiConfig",
    "AuthConfig",
    "BalanceConfig",
    "BillingConfig",
    "Config",
    "ConfigError",
    "ConfigStore",
    "DatabaseConfig",
    "DiscordConfig",
    "Duration",
    "EmailsConfig",
    "EndToEndConfig",
    "LoginFailuresConfig",
    "MailchimpConfig",
    "MixpanelConfig",
    "OAuthConfig",
    "OAuthProviderConfig",
    "RedisConfig",
    "SecretUrl",
    "SendgridConfig",
    "ServerConfig",
    "SignupConfig",
    "SignupTemplatesConfig",
    "SlackConfig",
    "SmtpConfig",
    "StatusConfig",
    "StripeConfig",
    "Tier",
    "UsageConfig",
    "V1Config",
    "build_config",
    "format_duration",
    "parse_duration",
    "parse_value",
    "process_environment",
]

ROOT = "micro"
"""The root name of the configuration document in the config store."""

REDACTED = "[redacted]"
ENV_PREFIX = "M3O_"
ENV_SEPARATOR = "__"


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad key, one per line.

    ``path`` is the first bad key (``usage.quotas.free``), relative to the root.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


# --- durations -----------------------------------------------------------------------------

_DURATION_UNITS_US: dict[str, Fraction] = {
    "ns": Fraction(1, 1000),
    "us": Fraction(1),
    "µs": Fraction(1),
    "μs": Fraction(1),
    "ms": Fraction(1000),
    "s": Fraction(1_000_000),
    "m": Fraction(60_000_000),
    "h": Fraction(3_600_000_000),
    "d": Fraction(86_400_000_000),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_DURATION_HELP = "expected a duration such as '24h', '5m', '30s', '300ms' or whole seconds"


def parse_duration(value: object) -> timedelta:
    """``"1h30m"``, ``"300ms"``, ``"2d"``, ``"90"`` or ``90`` (seconds) as a timedelta."""
    if isinstance(value, timedelta):
        total = value
    elif isinstance(value, int) and not isinstance(value, bool):
        total = timedelta(seconds=value)
    elif isinstance(value, str):
        total = _parse_duration_text(value.strip())
    else:
        raise ValueError(_DURATION_HELP)
    if total < timedelta(0):
        raise ValueError("a duration must not be negative")
    return total


def _parse_duration_text(text: str) -> timedelta:
    if not text:
        raise ValueError(_DURATION_HELP)
    if text.isdigit():
        return timedelta(seconds=int(text))
    position = 0
    micros = Fraction(0)
    while position < len(text):
        part = _DURATION_PART.match(text, position)
        if part is None:
            raise ValueError(_DURATION_HELP)
        micros += Fraction(part.group(1)) * _DURATION_UNITS_US[part.group(2)]
        position = part.end()
    return timedelta(microseconds=round(micros))


def format_duration(value: timedelta) -> str:
    """The compact notation of a duration: ``"24h"``, ``"1h30m"``, ``"1s500ms"``, ``"0s"``."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    parts: list[str] = []
    for unit, size in (("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000)):
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    if micros:
        parts.append(f"{micros}us")
    return sign + "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A duration: ``"24h"``-style text or whole seconds in, ``timedelta`` out."""


class _SecretUrlMarker:
    """Marks a URL whose password part is a secret (database and Redis URLs)."""


SecretUrl = Annotated[str, _SecretUrlMarker()]
"""A URL that may carry a password; the password is masked in :meth:`Config.dump`."""


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]
"""A list of strings, also accepted as one comma-separated string (the reference's form)."""


def _over_defaults(defaults: Mapping[str, int]) -> BeforeValidator:
    """A tier map given in part keeps the defaults of the tiers it does not name."""

    def merge(value: object) -> object:
        if isinstance(value, Mapping):
            return {**defaults, **value}
        return value

    return BeforeValidator(merge)


def _no_secret(default: str = "") -> Any:
    return Field(default_factory=lambda: SecretStr(default))


# --- sections ------------------------------------------------------------------------------


class _Section(BaseModel):
    """Every section: immutable, unknown keys refused, JSON key or field name accepted."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=True,
        use_attribute_docstrings=True,
        validate_default=True,
    )


class SlackConfig(_Section):
    enabled: bool = False
    """Post alerts to Slack."""
    token: SecretStr = _no_secret()
    """Slack bot token (``xoxb-...``)."""
    channel: str = "alerts"
    """Channel the alerts are posted to."""
    user_name: str = "Alerts Service"
    """Name the messages are posted under."""


class DiscordConfig(_Section):
    enabled: bool = False
    """Post alerts to Discord."""
    webhook: SecretStr = _no_secret()
    """Discord webhook URL (the URL is the credential)."""


class AlertConfig(_Section):
    blocklist: list[str] = Field(default_factory=list)
    """Events whose category, action or label contains one of these strings are dropped."""
    slack: SlackConfig = Field(default_factory=SlackConfig)
    """Slack destination."""
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    """Discord destination."""
    collapse_window: Duration = timedelta(minutes=5)
    """Identical alerts within this window are sent once, with a count."""
    timeout: Duration = timedelta(seconds=10)
    """Deadline of each call to Slack or Discord."""


class ApiConfig(_Section):
    blocklist_enabled: bool = True
    """The platform API refuses tokens of banned accounts at once (the reference's switch,
    off there; on here because a ban must take effect immediately)."""
    timeout: Duration = timedelta(seconds=30)
    """Deadline of a platform API call (``/<service>/<endpoint>``) to its service."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins browsers may call the platform API from (``https://console.example.com``,
    or ``*``); none by default."""


class BalanceConfig(_Section):
    margin: int = Field(default=0, ge=0, le=100)
    """Percent of a subscription payment kept as margin, not credited (top-ups: none)."""
    exchange_rates: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Credit units per minor unit of a currency other than ``stripe.currency``
    (``{"eur": 10800}``: one euro cent credits 10,800 units); a charge in a currency not
    listed raises an alert and is not credited."""
    flush_interval: Duration = timedelta(minutes=1)
    """How often API-usage debits are written to the ledger, aggregated per customer."""


class Tier(_Section):
    """A subscription tier. The reference's shorthand ``"pro": "price_123"`` is accepted."""

    name: str = ""
    """Display name."""
    stripe_price_id: str = ""
    """The Stripe price of the subscription; empty for a free tier."""
    price: str = ""
    """Display price (``"$25/month"``)."""
    description: str = ""
    """Display description."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        if isinstance(value, str):
            return {"name": value, "stripe_price_id": "" if value == "free" else value}
        return value


DEFAULT_TIERS: dict[str, dict[str, str]] = {
    "free": {"name": "Free", "stripe_price_id": "", "price": "$0", "description": "Free tier"}
}
DEFAULT_QUOTAS = {"free": 10_000, "solo": 100_000, "pro": 1_000_000, "business": 10_000_000}
DEFAULT_RATE_LIMITS = {"free": 1000, "solo": 1000, "pro": 1000, "business": 10_000}
DEFAULT_PROJECT_LIMITS = {"free": 1, "solo": 3, "pro": 10, "business": 50}


class BillingConfig(_Section):
    tiers: dict[str, Tier] = Field(
        default_factory=lambda: {k: Tier.model_validate(v) for k, v in DEFAULT_TIERS.items()}
    )
    """Subscription tiers by id; ``free`` always exists."""
    project_limits: Annotated[dict[str, NonNegativeInt], _over_defaults(DEFAULT_PROJECT_LIMITS)] = (
        Field(default_factory=lambda: dict(DEFAULT_PROJECT_LIMITS))
    )
    """Projects a billing account may create, per tier; a tier not listed gets free's."""

    @field_validator("tiers", mode="after")
    @classmethod
    def _free_exists(cls, tiers: dict[str, Tier]) -> dict[str, Tier]:
        if "free" not in tiers:
            return {"free": Tier.model_validate(DEFAULT_TIERS["free"]), **tiers}
        return tiers


class DatabaseConfig(_Section):
    url: SecretUrl = ""
    """``postgresql://user:password@host/db`` or ``sqlite+aiosqlite:///path``; empty: the
    SQLite file ``m3o.db`` in the data directory (the ``local`` profile)."""
    pool_size: int = Field(default=10, ge=1)
    """Connections kept open per process."""

    def resolved_url(self, data_dir: Path) -> str:
        """The URL to connect to: ``url``, or the SQLite file under ``data_dir``."""
        return self.url or sqlite_url(str(data_dir / "m3o.db"))


class SendgridConfig(_Section):
    api_key: SecretStr = _no_secret()
    """SendGrid API key."""
    api_url: str = "https://api.sendgrid.com"
    """SendGrid API base URL (tests point it at a local fake)."""


class SmtpConfig(_Section):
    host: str = "localhost"
    """SMTP server host."""
    port: int = Field(default=587, ge=1, le=65535)
    """SMTP server port."""
    username: str = ""
    """SMTP user; empty: no login."""
    password: SecretStr = _no_secret()
    """SMTP password."""
    starttls: bool = True
    """Upgrade the connection with STARTTLS."""
    use_tls: bool = False
    """Connect over TLS from the start (port 465); overrides ``starttls``."""


class EmailsConfig(_Section):
    enabled: bool = False
    """Send emails for real; when off, the local outbox records what would be sent."""
    transport: Literal["smtp", "sendgrid"] = "smtp"
    """How emails leave when enabled."""
    email_from: str = "M3O <noreply@m3o.com>"
    """Sender used when a request names none."""
    ip_pool_name: str = ""
    """SendGrid IP pool; empty: the account's default."""
    sendgrid: SendgridConfig = Field(default_factory=SendgridConfig)
    """The SendGrid transport."""
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    """The SMTP transport."""
    timeout: Duration = timedelta(seconds=10)
    """Deadline of each send."""


class EndToEndConfig(_Section):
    enabled: bool = False
    """Run the end-to-end check on a schedule (it can always be run on demand)."""
    email: str = ""
    """Address of the test customer; its mail must reach ``endtoend/Mailin``."""
    api_url: str = ""
    """Public URL the check calls; empty: this platform's ``server`` address."""
    mailin_secret: SecretStr = _no_secret()
    """Shared secret inbound mail must carry to be accepted by ``Mailin``."""
    sender: str = "M3O <noreply@m3o.com>"
    """Inbound mail must come from this sender."""
    subject: str = "Verify your M3O account email"
    """Inbound mail must have this subject."""
    interval: Duration = timedelta(minutes=5)
    """Time between scheduled runs."""
    max_age: Duration = timedelta(minutes=7)
    """``Check`` passes only if the last passing run finished within this time."""
    code_wait: Duration = timedelta(minutes=2)
    """How long a run waits for the verification code."""


class MailchimpConfig(_Section):
    enabled: bool = False
    """Sync customers to the Mailchimp list."""
    api_key: SecretStr = _no_secret()
    """Mailchimp API key; its ``-usN`` suffix names the data centre."""
    main_list_id: str = ""
    """The audience (list) customers are added to."""
    block_list: list[str] = Field(default_factory=list)
    """Emails never synced (compared case-insensitively)."""
    api_url: str = ""
    """API base URL; empty: derived from the key's data centre."""
    timeout: Duration = timedelta(seconds=10)
    """Deadline of each call."""


class MixpanelConfig(_Section):
    enabled: bool = False
    """Forward events to Mixpanel."""
    project: str = ""
    """Mixpanel project id."""
    user: str = ""
    """Service account user name."""
    secret: SecretStr = _no_secret()
    """Service account secret."""
    ignore_list: CommaList = Field(default_factory=list, alias="ignoreList")
    """Customers whose email is listed are not tracked (list or comma-separated string)."""
    api_url: str = "https://api.mixpanel.com"
    """Mixpanel API base URL (tests point it at a local fake)."""
    batch_size: int = Field(default=2000, ge=1, le=2000)
    """Events per import request (Mixpanel allows 2000)."""
    timeout: Duration = timedelta(seconds=10)
    """Deadline of each call."""


class OAuthProviderConfig(_Section):
    client_id: str = ""
    """OAuth client id."""
    client_secret: SecretStr = _no_secret()
    """OAuth client secret."""
    redirect_url: str = ""
    """Where the provider sends the browser back."""
    test_client_id: str = ""
    """Client id used for test logins."""
    test_client_secret: SecretStr = _no_secret()
    """Client secret used for test logins."""
    test_redirect_url: str = ""
    """Redirect URL used for test logins."""
    test: bool = False
    """Always use the ``test_*`` credentials, whatever the request asks."""

    def credentials(self, test: bool) -> tuple[str, SecretStr, str]:
        """``(client_id, client_secret, redirect_url)`` for a normal or a test login."""
        if test or self.test:
            return self.test_client_id, self.test_client_secret, self.test_redirect_url
        return self.client_id, self.client_secret, self.redirect_url


def _google() -> OAuthProviderConfig:
    return OAuthProviderConfig(test_redirect_url="http://localhost:3000/google-login")


def _github() -> OAuthProviderConfig:
    return OAuthProviderConfig(test_redirect_url="http://localhost:3000/github-login")


class OAuthConfig(_Section):
    google: OAuthProviderConfig = Field(default_factory=_google)
    """Google login."""
    github: OAuthProviderConfig = Field(default_factory=_github)
    """GitHub login."""
    state_secret: SecretStr = _no_secret()
    """Key that signs the ``state`` parameter; must be the same in every process."""
    state_ttl: Duration = timedelta(minutes=10)
    """How long a login started with a ``state`` may take."""
    timeout: Duration = timedelta(seconds=10)
    """Deadline of each call to a provider."""


class RedisConfig(_Section):
    url: SecretUrl = "redis://127.0.0.1:6379/0"
    """Redis URL (``rediss://`` for TLS); used by the ``platform`` profile."""
    address: str = ""
    """``host:port`` replacing the URL's (the reference's key); empty: the URL's."""
    username: str = ""
    """ACL user name; empty: the URL's."""
    password: SecretStr = _no_secret()
    """Password; empty: the URL's."""
    secure: bool = False
    """Use TLS (the reference's key; same as a ``rediss://`` URL)."""
    timeout: Duration = timedelta(seconds=5)
    """Deadline of each Redis command and connection attempt."""

    def connection_url(self) -> str:
        """The URL to connect with: ``url`` with ``address``, credentials and TLS applied."""
        parts = urlsplit(self.url)
        scheme = "rediss" if self.secure else parts.scheme
        host = self.address or (parts.netloc.rpartition("@")[2])
        user = self.username or (parts.username or "")
        password = self.password.get_secret_value() or (parts.password or "")
        credentials = ""
        if user or password:
            credentials = quote(user, safe="")
            if password:
                credentials += ":" + quote(password, safe="")
            credentials += "@"
        return urlunsplit((scheme, credentials + host, parts.path, parts.query, parts.fragment))


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    """Address the HTTP front listens on."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Port of the HTTP front."""
    public_url: str = ""
    """URL clients reach the platform at; empty: ``http://<host>:<port>``."""
    grpc_port: int = Field(default=9090, ge=0, le=65535)
    """Port a service listens on for gRPC (``platform`` profile)."""
    service_address_template: str = "{service}:9090"
    """gRPC address of a service; ``{service}`` is its name (Kubernetes service DNS)."""
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Lowest level logged."""
    log_json: bool = True
    """Log JSON lines; off: human-readable console output."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("service_address_template")
    @classmethod
    def _names_service(cls, value: str) -> str:
        if "{service}" not in value:
            raise ValueError("must contain '{service}'")
        return value

    @property
    def base_url(self) -> str:
        """``public_url``, or the address the server listens on."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def service_address(self, service: str) -> str:
        return self.service_address_template.replace("{service}", service)


class SignupTemplatesConfig(_Section):
    verification: str = "verification"
    """Template of the email with the verification code."""
    recovery: str = "recovery"
    """Template of the password-recovery email."""
    welcome: str = "welcome"
    """Template of the welcome email."""


class SignupConfig(_Section):
    block_list: list[str] = Field(default_factory=list)
    """Regular expressions; a matching (whole, normalised) email may not sign up."""
    allow_list: list[str] = Field(default_factory=list)
    """Regular expressions; when not empty, only a matching email may sign up."""
    engagement_block_list: list[str] = Field(default_factory=list)
    """Emails that get no promo credit and no welcome email (case-insensitive)."""
    welcome_delay: Duration = timedelta(hours=24)
    """Time between signup and the welcome email."""
    promo_credit: NonNegativeInt = Field(default=10_000, alias="promoCredit")
    """Credit granted once at signup, in 1/10,000ths of a cent."""
    promo_message: str = Field(
        default="Welcome to M3O, here is a little something to get you started 💸",
        alias="promoMessage",
    )
    """Reference of the promo credit, shown to the customer."""
    email_from: str = ""
    """Sender of signup emails; empty: ``emails.email_from``."""
    templates: SignupTemplatesConfig = Field(default_factory=SignupTemplatesConfig)
    """Email templates (SendGrid dynamic template ids when SendGrid sends)."""
    code_ttl: Duration = timedelta(minutes=5)
    """How long a verification code is valid."""
    code_attempts: int = Field(default=5, ge=1)
    """Wrong attempts after which a verification code is void."""
    reset_token_ttl: Duration = timedelta(minutes=10)
    """How long a password-reset token is valid."""
    recovery_interval: Duration = timedelta(minutes=1)
    """At most one recovery email per address in this time."""

    @field_validator("block_list", "allow_list")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns


DEFAULT_STATUS_SERVICES = (
    "admin",
    "alerts",
    "auth",
    "balance",
    "billing",
    "customers",
    "emails",
    "endtoend",
    "explore",
    "mailchimp",
    "mixpanel",
    "oauth",
    "projects",
    "publicapi",
    "signup",
    "status",
    "stripe",
    "usage",
    "v1",
)


class StatusConfig(_Section):
    services: CommaList = Field(default_factory=lambda: list(DEFAULT_STATUS_SERVICES))
    """Services whose health ``status/Call`` reports (list or comma-separated string)."""
    timeout: Duration = timedelta(seconds=2)
    """Deadline of each health check."""


class StripeConfig(_Section):
    api_key: SecretStr = _no_secret()
    """Live secret key."""
    signing_secret: SecretStr = _no_secret()
    """Live webhook signing secret."""
    success_url: str = ""
    """Where Checkout sends the customer after paying."""
    cancel_url: str = ""
    """Where Checkout sends the customer after cancelling."""
    currency: str = "usd"
    """Currency of top-ups and charges (ISO code, lower case)."""
    min_amount: NonNegativeInt = 1000
    """Smallest top-up or charge, in minor units (cents)."""
    test_mode: bool = False
    """Use the test keys."""
    test_api_key: SecretStr = _no_secret()
    """Test secret key."""
    test_signing_secret: SecretStr = _no_secret()
    """Test webhook signing secret (tried after the live one)."""
    api_base: str = ""
    """Stripe API base URL; empty: Stripe's (tests point it at a local fake)."""
    webhook_tolerance: Duration = timedelta(seconds=300)
    """Largest accepted age of a webhook signature."""

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


def _cap_keys(caps: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    for tier, endpoints in caps.items():
        for key in endpoints:
            api, _, endpoint = key.partition("$")
            if not api or not endpoint:
                raise ValueError(f"{tier}.{key}: keys are '<api>$<Endpoint>' (app$App_Run)")
    return caps


class UsageConfig(_Section):
    quotas: Annotated[dict[str, NonNegativeInt], _over_defaults(DEFAULT_QUOTAS)] = Field(
        default_factory=lambda: dict(DEFAULT_QUOTAS)
    )
    """Monthly free calls to free endpoints, per tier; a tier not listed gets free's."""
    usage_caps: Annotated[dict[str, dict[str, NonNegativeInt]], AfterValidator(_cap_keys)] = Field(
        default_factory=dict
    )
    """Per tier, ``<api>$<Endpoint>`` (``.`` written ``_``) -> the most units a customer
    may use; 0: the endpoint is not available on that tier."""
    history_retention: Duration = timedelta(days=365)
    """Daily usage history older than this is deleted."""


class V1Config(_Section):
    rate_limits: Annotated[dict[str, NonNegativeInt], _over_defaults(DEFAULT_RATE_LIMITS)] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS), alias="rate-limits"
    )
    """Calls per second per project, per tier; a tier not listed gets free's."""
    key_pepper: SecretStr = _no_secret()
    """Server-side HMAC pepper of API key hashes; set it in production, never change it
    (every key would stop working)."""
    fail_open_free: bool = False
    """Admit free calls when the counter store is unreachable (priced calls get 503)."""
    upstream_timeout: Duration = timedelta(seconds=30)
    """Deadline of a forwarded call."""
    key_cache_ttl: Duration = timedelta(seconds=1)
    """How long a gateway process trusts a cached key (revocation takes this long)."""


class LoginFailuresConfig(_Section):
    max_per_account: int = Field(default=5, ge=1)
    """Failed logins per account within ``window`` before it is throttled."""
    max_per_address: int = Field(default=20, ge=1)
    """Failed logins per client address within ``window`` before it is throttled."""
    window: Duration = timedelta(minutes=15)
    """Window the failures are counted in."""


class AuthConfig(_Section):
    access_token_ttl: Duration = timedelta(hours=1)
    """Lifetime of access tokens."""
    customer_token_ttl: Duration = timedelta(days=30)
    """Lifetime of the access tokens customers get at login and signup."""
    refresh_token_ttl: Duration = timedelta(days=90)
    """Lifetime of refresh tokens."""
    service_secret: SecretStr = _no_secret()
    """Pre-shared secret service accounts use to get tokens (``platform`` profile)."""
    admin_password: SecretStr = _no_secret()
    """Password of the ``admin`` account; empty: generated on first start."""
    login_failures: LoginFailuresConfig = Field(default_factory=LoginFailuresConfig)
    """Throttling of repeated failed logins."""


class Config(_Section):
    """The whole configuration: one attribute per section, every one optional."""

    alert: AlertConfig = Field(default_factory=AlertConfig)
    """Alerts to Slack and Discord."""
    api: ApiConfig = Field(default_factory=ApiConfig)
    """The platform API."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    """Tokens, service accounts and login throttling (ours)."""
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    """Customer balances."""
    billing: BillingConfig = Field(default_factory=BillingConfig)
    """Subscription tiers and billing accounts."""
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    """The database (ours)."""
    emails: EmailsConfig = Field(default_factory=EmailsConfig)
    """Outgoing email."""
    endtoend: EndToEndConfig = Field(default_factory=EndToEndConfig)
    """The live end-to-end check."""
    mailchimp: MailchimpConfig = Field(default_factory=MailchimpConfig)
    """Mailchimp list sync."""
    mixpanel: MixpanelConfig = Field(default_factory=MixpanelConfig)
    """Mixpanel analytics forwarding."""
    oauth: OAuthConfig = Field(default_factory=OAuthConfig)
    """Google and GitHub login."""
    redis: RedisConfig = Field(default_factory=RedisConfig)
    """Redis (``platform`` profile: events, counters, caches)."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    """Listening addresses, service addresses and logging (ours)."""
    signup: SignupConfig = Field(default_factory=SignupConfig)
    """Signup, onboarding and password recovery."""
    status: StatusConfig = Field(default_factory=StatusConfig)
    """The status endpoint."""
    stripe: StripeConfig = Field(default_factory=StripeConfig)
    """Stripe payments."""
    usage: UsageConfig = Field(default_factory=UsageConfig)
    """Usage quotas and caps."""
    v1: V1Config = Field(default_factory=V1Config)
    """The public API gateway."""

    def dump(self, *, reveal: bool = False) -> dict[str, Any]:
        """The configuration as a JSON document, every key with its value.

        Secrets read ``"[redacted]"`` (an empty secret reads ``""``) and passwords in URLs
        are masked, unless ``reveal``. Durations read ``"24h"``.
        """
        return _dump_model(self, reveal)

    def value_at(self, path: str, *, reveal: bool = False) -> Any:
        """The value at ``path`` (``micro.usage.quotas``), as :meth:`dump` shows it.

        A missing key of a free-form map (an unknown tier) reads as None; a key no section
        has raises :class:`ConfigError`.
        """
        keys, _ = _resolve(_split_path(path), loose=False)
        return _dig(self.dump(reveal=reveal), keys)


# --- dumping -------------------------------------------------------------------------------

_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)([^@]*)(@)")


def _dump_model(model: BaseModel, reveal: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if not reveal and isinstance(value, str) and _is_secret_url(info):
            value = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), value)
        out[info.alias or name] = _dump_value(value, reveal)
    return out


def _dump_value(value: Any, reveal: bool) -> Any:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return secret if reveal or not secret else REDACTED
    if isinstance(value, BaseModel):
        return _dump_model(value, reveal)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {str(k): _dump_value(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump_value(v, reveal) for v in value]
    return value


def _is_secret_url(info: FieldInfo) -> bool:
    return any(isinstance(item, _SecretUrlMarker) for item in info.metadata)


# --- paths and the schema ------------------------------------------------------------------


def _split_path(path: str) -> list[str]:
    """``micro.usage.quotas`` -> ``["usage", "quotas"]`` (the keys below the root)."""
    segments = path.strip().split(".")
    if segments[0] != ROOT:
        raise ConfigError(f"{path}: config paths start with {ROOT!r} ({ROOT}.usage.quotas)", path)
    if any(not segment for segment in segments):
        raise ConfigError(f"{path}: empty key in path", path)
    return segments[1:]


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    bare = _strip(annotation)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return bare
    return None


def _map_values_of(annotation: Any) -> Any | None:
    """The value type of a ``dict[str, X]`` field, None for anything else."""
    bare = _strip(annotation)
    if get_origin(bare) is dict:
        return get_args(bare)[1]
    return None


def _loose(key: str) -> str:
    return key.lower().replace("-", "_")


def _field(model: type[BaseModel], key: str, *, loose: bool) -> tuple[str, Any] | None:
    """The JSON key and type of ``model``'s field named (or aliased) ``key``."""
    for name, info in model.model_fields.items():
        json_key = info.alias or name
        names = (name, json_key)
        if key in names or (loose and _loose(key) in {_loose(n) for n in names}):
            return json_key, info.annotation
    return None


def _resolve(
    segments: list[str], *, loose: bool, existing: tuple[Mapping[str, Any], ...] = ()
) -> tuple[list[str], Any]:
    """Canonical JSON keys of a path and the type found there.

    ``loose`` (environment variables) matches field names case-insensitively and map keys
    against the keys of the ``existing`` documents, else lower-cased.
    """
    annotation: Any = Config
    keys: list[str] = []
    for segment in segments:
        where = ".".join([*keys, segment])
        model = _model_of(annotation)
        values = _map_values_of(annotation)
        if model is not None:
            found = _field(model, segment, loose=loose)
            if found is None:
                raise ConfigError(f"{where}: unknown key", where)
            key, annotation = found
        elif values is not None:
            key = _map_key(segment, keys, existing) if loose else segment
            annotation = values
        else:
            raise ConfigError(f"{where}: {'.'.join(keys)} has no keys below it", where)
        keys.append(key)
    return keys, annotation


def _map_key(segment: str, parent: list[str], existing: tuple[Mapping[str, Any], ...]) -> str:
    for document in existing:
        node = _dig(document, parent)
        if isinstance(node, Mapping):
            for key in node:
                if str(key).lower() == segment.lower():
                    return str(key)
    return segment.lower()


def _dig(document: Any, keys: list[str]) -> Any:
    node = document
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _canonical(annotation: Any, value: Any) -> Any:
    """``value`` with every field name replaced by its JSON key (``rate_limits`` ->
    ``rate-limits``), so a stored document spells each key one way. Unknown keys are left
    for validation to report."""
    if not isinstance(value, Mapping):
        return value
    model = _model_of(annotation)
    if model is not None:
        out: dict[str, Any] = {}
        for key, item in value.items():
            found = _field(model, str(key), loose=False)
            if found is None:
                out[str(key)] = item
            else:
                out[found[0]] = _canonical(found[1], item)
        return out
    values = _map_values_of(annotation)
    if values is not None:
        return {str(key): _canonical(values, item) for key, item in value.items()}
    return dict(value)


def _with_value(document: Mapping[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``keys``, creating objects on the way."""
    if not keys:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{ROOT}: the config document must be a JSON object")
        return copy.deepcopy(dict(value))
    result = copy.deepcopy(dict(document))
    node = result
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = copy.deepcopy(value)
    return result


def _without(document: Mapping[str, Any], keys: list[str]) -> tuple[dict[str, Any], bool]:
    result = copy.deepcopy(dict(document))
    parent = _dig(result, keys[:-1])
    if not isinstance(parent, dict) or keys[-1] not in parent:
        return result, False
    del parent[keys[-1]]
    return result, True


def _is_text(annotation: Any) -> bool:
    bare = _strip(annotation)
    return bare is str or bare is SecretStr


def parse_value(path: str, text: str) -> Any:
    """The value ``text`` stands for at ``path``: the text itself for a string-typed key,
    else its JSON value when it parses as JSON, else the text (for the CLI's ``config set``).
    """
    _, annotation = _resolve(_split_path(path), loose=False)
    return _parse_text(annotation, text)


def _parse_text(annotation: Any, text: str) -> Any:
    if _is_text(annotation):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


# --- validation and the environment --------------------------------------------------------


def _validate(document: Mapping[str, Any], sources: Mapping[tuple[str, ...], str]) -> Config:
    try:
        return Config.model_validate(document)
    except ValidationError as exc:
        raise _config_error(exc, sources) from None


def _config_error(exc: ValidationError, sources: Mapping[tuple[str, ...], str]) -> ConfigError:
    lines: list[str] = []
    first = ""
    for error in exc.errors():
        location = tuple(str(part) for part in error["loc"])
        where = ".".join(location) or ROOT
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        origin = next(
            (name for keys, name in sources.items() if location[: len(keys)] == keys), None
        )
        lines.append(f"{where}: {message}" + (f" (from {origin})" if origin else ""))
        first = first or where
    return ConfigError("\n".join(lines), first)


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """``(variable, levels)`` of every override in ``env``, shallow ones first."""
    found: list[tuple[str, list[str]]] = []
    for name in env:
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        levels = name[len(ENV_PREFIX) :].split(ENV_SEPARATOR)
        if any(not level for level in levels):
            raise ConfigError(f"{name}: empty level in the variable name", name)
        found.append((name, levels))
    return sorted(found, key=lambda item: (len(item[1]), item[0]))


def _with_environment(
    document: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    defaults = Config().dump(reveal=True)
    merged = copy.deepcopy(dict(document))
    sources: dict[tuple[str, ...], str] = {}
    for name, levels in _env_overrides(env):
        try:
            keys, annotation = _resolve(levels, loose=True, existing=(merged, defaults))
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}", exc.path) from None
        merged = _with_value(
            merged, keys, _canonical(annotation, _parse_text(annotation, env[name]))
        )
        sources[tuple(keys)] = name
    return merged, sources


def build_config(document: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """The configuration ``document`` describes, with the overrides in ``env`` applied.

    Raises :class:`ConfigError` naming every bad key (and the variable it came from).
    """
    merged, sources = _with_environment(document, env)
    return _validate(merged, sources)


def process_environment() -> Mapping[str, str]:
    """This process's environment variables: the CLI passes them to :meth:`ConfigStore.load`.

    The only place configuration reads ``os.environ``; everything else receives the mapping.
    """
    return dict(os.environ)


# --- the config store ----------------------------------------------------------------------

_WRITE_ATTEMPTS = 3
_Change = Callable[[dict[str, Any]], dict[str, Any]]


class ConfigStore:
    """The configuration document in the database, read and written by path.

    The document keeps only what was set, keys in their JSON spelling; defaults and the
    environment are applied by :meth:`load`.
    """

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def document(self) -> dict[str, Any]:
        """The stored document; ``{}`` when nothing was ever set."""
        async with self._sessions() as session:
            stored = await session.scalar(
                select(config_documents.c.document).where(config_documents.c.name == ROOT)
            )
        return dict(stored) if isinstance(stored, Mapping) else {}

    async def get(self, path: str) -> Any:
        """The stored value at ``path`` (``micro`` or ``micro.usage.quotas``), secrets
        included; None when nothing is stored there."""
        keys, _ = _resolve(_split_path(path), loose=False)
        async with self._sessions() as session:
            stored = await session.scalar(
                select(config_documents.c.document).where(config_documents.c.name == ROOT)
            )
        if stored is None:
            return None
        return copy.deepcopy(_dig(stored, keys))

    async def set(self, path: str, value: Any) -> None:
        """Store ``value`` at ``path``, creating objects on the way.

        The whole resulting document is validated first; a bad one is refused with a
        :class:`ConfigError` naming the key and nothing is written.
        """
        keys, annotation = _resolve(_split_path(path), loose=False)
        canonical = _canonical(annotation, value)
        await self._update(lambda current: _with_value(current, keys, canonical))

    async def delete(self, path: str) -> bool:
        """Remove what is stored at ``path`` (its defaults apply again); False if nothing
        was stored there."""
        keys, _ = _resolve(_split_path(path), loose=False)
        removed = False

        def change(current: dict[str, Any]) -> dict[str, Any]:
            nonlocal removed
            if not keys:
                removed = bool(current)
                return {}
            result, removed = _without(current, keys)
            return result

        await self._update(change)
        return removed

    async def load(self, env: Mapping[str, str]) -> Config:
        """The configuration: the stored document, the overrides in ``env``, the defaults."""
        return build_config(await self.document(), env)

    async def show(self, path: str, env: Mapping[str, str], *, reveal: bool = False) -> Any:
        """The value in force at ``path`` (defaults and ``env`` applied), secrets redacted
        unless ``reveal``: what ``m3o config get`` prints."""
        config = await self.load(env)
        return config.value_at(path, reveal=reveal)

    async def _update(self, change: _Change) -> None:
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                await self._update_once(change)
                return
            except IntegrityError:
                # Two first writes raced to insert the row; the loser retries as an update.
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise

    async def _update_once(self, change: _Change) -> None:
        table = config_documents
        now = datetime.now(UTC)
        async with transaction(self._sessions) as session:
            row = (
                await session.execute(
                    select(table.c.document, table.c.version)
                    .where(table.c.name == ROOT)
                    .with_for_update()
                )
            ).first()
            current = dict(row.document) if row is not None else {}
            document = change(current)
            _validate(document, {})
            if row is None:
                await session.execute(
                    insert(table).values(name=ROOT, document=document, version=1, updated=now)
                )
            else:
                await session.execute(
                    update(table)
                    .where(table.c.name == ROOT)
                    .values(document=document, version=row.version + 1, updated=now)
                )
