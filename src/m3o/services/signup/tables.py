"""Tables the signup service owns.

- ``signup_codes``: the pending verification code of each address (one at most; a new code
  replaces the old), as a salted hash, with its expiry, wrong attempts so far and, while a
  Verify is completing it, the time until which that Verify holds it.
- ``signup_reset_tokens``: password-reset tokens by SHA-256 hash, with expiry and the time
  they were used (kept until expired, so a reuse gets a clear answer).
- ``signup_onboarding``: the onboarding steps done for each customer (promo credit granted,
  welcome email scheduled), so a redelivered Signup event repeats nothing.
- ``signup_tracking``: visitors' signup journeys, by the id the client chose.
- ``signup_waitlist``: addresses on the waitlist.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["codes", "metadata", "onboarding", "reset_tokens", "tracking", "waitlist"]

metadata = new_metadata()

codes = Table(
    "signup_codes",
    metadata,
    Column("email", String(320), primary_key=True),
    # identifies this code among the ones the address gets over time
    Column("id", String(36), nullable=False),
    Column("customer_id", String(36), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("salt", String(32), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
)

reset_tokens = Table(
    "signup_reset_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("email", String(320), nullable=False, index=True),
    Column("customer_id", String(36), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False, index=True),
    Column("used", UTCDateTime, nullable=True),
)

onboarding = Table(
    "signup_onboarding",
    metadata,
    Column("customer_id", String(36), primary_key=True),
    Column("promo_granted", UTCDateTime, nullable=True),
    Column("welcome_scheduled", UTCDateTime, nullable=True),
)

tracking = Table(
    "signup_tracking",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("email", String(320), nullable=False),
    # unix seconds, 0 when not known yet
    Column("first_visit", BigInteger, nullable=False),
    Column("first_verification", BigInteger, nullable=False),
    Column("registration", BigInteger, nullable=False),
    Column("referrer", String(2048), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Index("ix_signup_tracking_email", "email"),
)

waitlist = Table(
    "signup_waitlist",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("created", UTCDateTime, nullable=False),
)
