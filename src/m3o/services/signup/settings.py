"""The signup service's settings, taken once from config sections ``signup`` and ``auth``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from m3o.runtime.auth import CallContext
from m3o.runtime.config import Config
from m3o.runtime.email_address import InvalidEmail, SignupPolicy, normalise_email, parse_email
from m3o.runtime.errors import BadRequest

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "SignupSettings",
    "Templates",
    "check_email",
    "check_password",
    "settings_from",
]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused: hashing them costs the server, not the guesser."""


@dataclass(frozen=True, slots=True)
class Templates:
    """Email template ids."""

    verification: str = "verification"
    recovery: str = "recovery"
    welcome: str = "welcome"
    account_exists: str = "account_exists"
    """Sent to the owner when someone asks to sign up with an address that has an account."""


@dataclass(frozen=True, slots=True)
class SignupSettings:
    """Everything the handlers and the onboarding consumer are configured with."""

    policy: SignupPolicy = field(default_factory=SignupPolicy)
    """Who may sign up and who gets onboarding."""
    code_ttl: timedelta = timedelta(minutes=5)
    """How long a verification code is valid."""
    code_attempts: int = 5
    """Wrong attempts after which a verification code is void."""
    reset_token_ttl: timedelta = timedelta(minutes=10)
    """How long a password-reset token is valid."""
    recovery_interval: timedelta = timedelta(minutes=1)
    """At most one recovery email per address in this time."""
    notice_interval: timedelta = timedelta(hours=1)
    """At most one "someone tried to sign up with your address" email per address in this
    time (the caller's answer does not change, so the owner's inbox is not flooded)."""
    token_ttl: timedelta = timedelta(days=30)
    """Lifetime of the access token Verify returns (config ``auth.customer_token_ttl``)."""
    email_from: str = ""
    """Sender of signup emails; empty: the emails service's default."""
    templates: Templates = field(default_factory=Templates)
    welcome_delay: timedelta = timedelta(hours=24)
    """Time between signup and the welcome email."""
    promo_credit: int = 10_000
    """Credit granted once at signup, in 1/10,000ths of a cent (0: none)."""
    promo_message: str = "Welcome to M3O"
    """Reference of the promo credit, shown to the customer."""
    reset_page: str = ""
    """The console's page for a new password (``<server.base_url>/console/reset``): the
    recovery email links to it with the address and token filled in; empty: no link."""


def settings_from(config: Config) -> SignupSettings:
    signup = config.signup
    return SignupSettings(
        policy=SignupPolicy(
            block_list=signup.block_list,
            allow_list=signup.allow_list,
            engagement_block_list=signup.engagement_block_list,
        ),
        code_ttl=signup.code_ttl,
        code_attempts=signup.code_attempts,
        reset_token_ttl=signup.reset_token_ttl,
        recovery_interval=signup.recovery_interval,
        token_ttl=config.auth.customer_token_ttl,
        email_from=signup.email_from,
        templates=Templates(
            verification=signup.templates.verification,
            recovery=signup.templates.recovery,
            welcome=signup.templates.welcome,
        ),
        welcome_delay=signup.welcome_delay,
        promo_credit=signup.promo_credit,
        promo_message=signup.promo_message,
        reset_page=f"{config.server.base_url.rstrip('/')}/console/reset",
    )


def check_password(ctx: CallContext, password: str, *, allow_empty: bool) -> None:
    """BadRequest unless ``password`` has 8 to 1024 characters (or is empty, if allowed)."""
    if not password and allow_empty:
        return
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            ctx.endpoint, f"Password must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequest(ctx.endpoint, f"Password must be at most {MAX_PASSWORD_LENGTH} characters")


def check_email(ctx: CallContext, email: str, *, missing: str = "Missing email") -> str:
    """The normalised ``email``, or BadRequest: ``missing`` when blank, else the reason it
    is refused (see :mod:`m3o.runtime.email_address`)."""
    if not normalise_email(email):
        raise BadRequest(ctx.endpoint, missing)
    try:
        return parse_email(email)
    except InvalidEmail as exc:
        raise BadRequest(ctx.endpoint, exc.detail()) from None
