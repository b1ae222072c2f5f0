"""The configuration sections: one immutable pydantic model per top-level key.

Every key has a default and a docstring; unknown keys are refused; keys keep the
reference's JSON spelling where it had one (aliases) and accept the field name too. The root
model that gathers them is :class:`m3o.runtime.config.document.Config`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    SecretStr,
    field_validator,
    model_validator,
)

from m3o.runtime.config.values import CommaList, Duration, SecretUrl, sqlite_url

__all__ = [
    "AlertConfig",
    "ApiConfig",
    "AuthConfig",
    "BalanceConfig",
    "BillingConfig",
    "DatabaseConfig",
    "DiscordConfig",
    "EmailsConfig",
    "EndToEndConfig",
    "GithubOAuthConfig",
    "GoogleOAuthConfig",
    "LoginFailuresConfig",
    "MailchimpConfig",
    "MixpanelConfig",
    "OAuthConfig",
    "OAuthProviderConfig",
    "PasswordHashConfig",
    "RedisConfig",
    "SendgridConfig",
    "ServerConfig",
    "SignupConfig",
    "SignupTemplatesConfig",
    "SlackConfig",
    "SmtpConfig",
    "StatusConfig",
    "StripeConfig",
    "Tier",
    "TracingConfig",
    "UsageConfig",
    "V1Config",
]


def _over_defaults(defaults: Mapping[str, int]) -> BeforeValidator:
    """A tier map given in part keeps the defaults of the tiers it does not name."""

    def merge(value: object) -> object:
        if isinstance(value, Mapping):
            return {**defaults, **value}
        return value

    return BeforeValidator(merge)


def _no_secret(default: str = "") -> Any:
    return Field(default_factory=lambda: SecretStr(default))


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
    trusted_proxies: CommaList = Field(default_factory=list)
    """Networks of the proxies in front of the gateway (``10.0.0.0/8``, an ingress
    controller's pods): from them, the client is the last ``X-Forwarded-For`` entry that
    is not a trusted proxy. None by default: the client is the connection's peer."""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network (10.0.0.0/8)") from None
        return value


def _percent(value: object) -> object:
    """The reference's margin was a fraction (0.2 kept 20 %): a number strictly between 0
    and 1 is read as one, and must come to a whole percent."""
    if isinstance(value, float) and 0 < value < 1:
        percent = Decimal(str(value)) * 100
        if percent != percent.to_integral_value():
            raise ValueError("a fraction must come to a whole percent (0.2, 0.05)")
        return int(percent)
    return value


class BalanceConfig(_Section):
    margin: Annotated[int, BeforeValidator(_percent)] = Field(default=0, ge=0, le=100)
    """Percent of a subscription payment kept as margin, not credited (top-ups: none); a
    number between 0 and 1 is the reference's fraction (``0.2``: 20 %)."""
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
    """Connections kept open per process (PostgreSQL; SQLite always uses one)."""

    def resolved_url(self, data_dir: Path) -> str:
        """The URL to connect to: ``url``, or the SQLite file under ``data_dir``."""
        return self.url or sqlite_url(str(data_dir / "m3o.db"))


class SendgridConfig(_Section):
    api_key: SecretStr = _no_secret()
    """SendGrid API key."""
    api_url: str = "https://api.sendgrid.com"
    """SendGrid API base URL (tests point it at a local fake)."""
    templates: dict[str, str] = Field(default_factory=dict)
    """Our template names (``verification``, ``recovery``, ``welcome``) mapped to SendGrid
    dynamic template ids; unmapped ones are rendered here and sent as content."""


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
    """How emails leave when enabled; not given, ``sendgrid`` when ``sendgrid.api_key`` is
    set (the reference's only transport), else ``smtp``."""
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
    max_attempts: int = Field(default=6, ge=1)
    """Attempts before an email is marked failed."""
    retry_backoff: Duration = timedelta(seconds=10)
    """Delay before the first retry; it doubles with each attempt."""
    retry_backoff_max: Duration = timedelta(minutes=10)
    """Longest delay between two attempts."""
    poll_interval: Duration = timedelta(seconds=5)
    """How often scheduled and retried emails are looked for."""

    @model_validator(mode="before")
    @classmethod
    def _sendgrid_when_keyed(cls, value: object) -> object:
        if not isinstance(value, Mapping) or "transport" in value:
            return value
        sendgrid = value.get("sendgrid")
        key = sendgrid.get("api_key") if isinstance(sendgrid, Mapping) else None
        if isinstance(key, SecretStr):
            key = key.get_secret_value()
        return {**value, "transport": "sendgrid"} if key else value


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
    """Forward events to Mixpanel. Off, the service consumes no events (its groups are
    retired); on without a project, user or secret, it sends them to a local sink."""
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


class GoogleOAuthConfig(OAuthProviderConfig):
    test_redirect_url: str = "http://localhost:3000/google-login"
    """Redirect URL used for test logins."""
    authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    """Google's authorization page (tests point it at a fake provider)."""
    token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    """Google's code-for-token exchange."""
    userinfo_url: str = "https://www.googleapis.com/oauth2/v3/userinfo"
    """Google's profile endpoint (email and email_verified)."""


class GithubOAuthConfig(OAuthProviderConfig):
    test_redirect_url: str = "http://localhost:3000/github-login"
    """Redirect URL used for test logins."""
    authorize_url: str = "https://github.com/login/oauth/authorize"
    """GitHub's authorization page (tests point it at a fake provider)."""
    token_url: str = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
    """GitHub's code-for-token exchange."""
    emails_url: str = "https://api.github.com/user/emails"
    """GitHub's list of the user's addresses (primary, verified)."""


class OAuthConfig(_Section):
    google: GoogleOAuthConfig = Field(default_factory=GoogleOAuthConfig)
    """Google login."""
    github: GithubOAuthConfig = Field(default_factory=GithubOAuthConfig)
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
    """Address the HTTP front (and a service process's ``metrics_port``) listens on."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Port of the HTTP front."""
    public_url: str = ""
    """URL clients reach the platform at; empty: ``http://<host>:<port>``."""
    grpc_port: int = Field(default=9090, ge=0, le=65535)
    """Port a service listens on for gRPC (``platform`` profile)."""
    service_address_template: str = "{service}:9090"
    """gRPC address of a service; ``{service}`` is its name (Kubernetes service DNS)."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port a service process (``m3o run <service>``) serves Prometheus ``/metrics`` on, at
    ``host``; 0: none. The HTTP front serves ``/metrics`` on its own port."""
    shutdown_delay: Duration = timedelta(0)
    """On SIGTERM, how long a platform process (``m3o run``) goes on serving with its
    readiness failing before it stops accepting calls: the time a load balancer needs to
    stop sending it new ones (Kubernetes: a few seconds). In-flight calls are then given
    up to 10 s to finish."""
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
    """Regular expressions; an email containing a match (Go's ``MatchString``: anywhere in
    the address) may not sign up."""
    allow_list: list[str] = Field(default_factory=list)
    """Regular expressions; when not empty, only an email containing a match may sign up."""
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


class TracingConfig(_Section):
    otlp_endpoint: SecretUrl = ""
    """OTLP/HTTP (protobuf) traces URL spans are exported to
    (``http://otel-collector:4318/v1/traces``); empty: tracing off, at no cost. Headers the
    collector needs (an API key) come from ``OTEL_EXPORTER_OTLP_HEADERS``."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces recorded (0 to 1); a call arriving with a ``traceparent`` follows
    its caller's decision."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL")
        return value


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
    unit_usage_ttl: Duration = timedelta(seconds=5)
    """How long the unit usage an API's usage endpoint reported is trusted before the
    gateway asks again (in the background, per API and project)."""
    unit_usage_timeout: Duration = timedelta(seconds=2)
    """Deadline of a call to an API's usage endpoint."""
    request_events_buffer: int = Field(default=200_000, ge=1)
    """Request events a gateway process keeps in memory while they cannot be published;
    past it, the newest are spilled to durable storage (the outbox), never dropped."""
    max_answer_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest answer the gateway takes from an upstream (HTTP: the body, unpacked or not;
    gRPC: each message); a longer one fails the call as a crash of the upstream,
    uncharged."""


class LoginFailuresConfig(_Section):
    max_per_account: int = Field(default=5, ge=1)
    """Failed logins per account within ``window`` before it is throttled."""
    max_per_address: int = Field(default=20, ge=1)
    """Failed logins per client address within ``window`` before it is throttled."""
    window: Duration = timedelta(minutes=15)
    """Window the failures are counted in."""


class PasswordHashConfig(_Section):
    """Argon2id's cost for the secrets auth stores (passwords, service secrets). The
    defaults are RFC 9106's low-memory profile; hashes made with other parameters are
    upgraded at their next successful login."""

    time_cost: int = Field(default=3, ge=1, le=100)
    """Passes over the memory."""
    memory_cost: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    """Memory per hash, in KiB (65536: 64 MiB); at least 8 per lane."""
    parallelism: int = Field(default=4, ge=1, le=64)
    """Lanes (threads) per hash."""

    @model_validator(mode="after")
    def _enough_memory_per_lane(self) -> PasswordHashConfig:
        if self.memory_cost < 8 * self.parallelism:
            raise ValueError("memory_cost must be at least 8 KiB per lane (8 x parallelism)")
        return self

    @property
    def weaker_than_default(self) -> bool:
        """Cheaper than the defaults in time or memory (logged as a warning where used)."""
        default = PasswordHashConfig()
        return self.time_cost < default.time_cost or self.memory_cost < default.memory_cost


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
    key_encryption_key: SecretStr = _no_secret()
    """Key that encrypts the token signing keys at rest: 32 random bytes in base64
    (``openssl rand -base64 32``). Empty: the ``local`` profile uses the file
    ``key-encryption-key`` in the data directory (made on first start); the ``platform``
    profile stores the keys in clear and logs a warning. Set it from a Secret there."""
    previous_key_encryption_keys: SecretStr = _no_secret()
    """Comma-separated older key-encryption keys, used only to decrypt while rotating."""
    login_failures: LoginFailuresConfig = Field(default_factory=LoginFailuresConfig)
    """Throttling of repeated failed logins."""
    password_hash: PasswordHashConfig = Field(default_factory=PasswordHashConfig)
    """Argon2id's cost for stored secrets."""

    @field_validator("key_encryption_key", "previous_key_encryption_keys")
    @classmethod
    def _keys_are_32_bytes(cls, value: SecretStr) -> SecretStr:
        for item in value.get_secret_value().split(","):
            if item.strip() and len(_base64_bytes(item.strip())) != _KEY_ENCRYPTION_KEY_BYTES:
                raise ValueError("must be 32 random bytes in base64 (openssl rand -base64 32)")
        return value


_KEY_ENCRYPTION_KEY_BYTES = 32


def _base64_bytes(text: str) -> bytes:
    """``text`` decoded as base64 (standard or URL-safe, padding optional); b"" if it is not."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError:
        return b""
