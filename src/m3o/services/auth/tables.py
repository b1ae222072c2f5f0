"""Tables the auth service owns.

- ``auth_accounts``: identities; the secret only as an Argon2id hash. ``name`` (normalised,
  NULL when empty) is unique per issuer.
- ``auth_keys``: the Ed25519 key pairs that sign access tokens. The newest key that is not
  retired signs; retired keys stay published in the JWKS until their tokens have expired.
- ``auth_sessions``: one row per refresh-token family (the ``sid`` claim of its access
  tokens), with the latest expiry of any access token issued in it, so a revocation knows
  how long to refuse them.
- ``auth_refresh_tokens``: refresh tokens by SHA-256 hash; ``used`` is set when one is
  rotated, and presenting it again revokes its family.
- ``auth_rules``: access rules.
- ``auth_blocks``: the durable blocklist (the counter store holds a copy every process
  reads).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = [
    "accounts",
    "blocks",
    "keys",
    "metadata",
    "refresh_tokens",
    "rules",
    "sessions",
]

metadata = new_metadata()


accounts = Table(
    "auth_accounts",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("issuer", String(64), nullable=False),
    Column("name", String(320), nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("secret_hash", String(255), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    UniqueConstraint("issuer", "name"),
)

keys = Table(
    "auth_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    # PKCS#8 PEM of the Ed25519 private key, sealed with the key-encryption key
    # (key_encryption.py); rows written by older versions hold the PEM in clear
    Column("private_key", Text, nullable=False),
    # the public key as a JWK (kty, crv, x, kid, alg, use)
    Column("public_jwk", JSON, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("retired", UTCDateTime, nullable=True),
)

sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(255), nullable=False, index=True),
    # access token lifetime (seconds) of the session, reused when it is refreshed
    Column("access_ttl", Integer, nullable=False),
    # latest expiry of an access token issued in this session
    Column("access_expires", UTCDateTime, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("revoked", UTCDateTime, nullable=True),
)

refresh_tokens = Table(
    "auth_refresh_tokens",
    metadata,
    # hex SHA-256 of the token; the token itself is never stored
    Column("hash", String(64), primary_key=True),
    Column(
        "session_id",
        ForeignKey(sessions.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False, index=True),
    Column("used", UTCDateTime, nullable=True),
)

rules = Table(
    "auth_rules",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_name", String(255), nullable=False),
    Column("endpoint", String(255), nullable=False),
    Column("scope", String(255), nullable=False),
    Column("access", String(8), nullable=False),
    Column("priority", Integer, nullable=False),
)

blocks = Table(
    "auth_blocks",
    metadata,
    Column("account_id", String(255), primary_key=True),
    Column("created", UTCDateTime, nullable=False),
)
