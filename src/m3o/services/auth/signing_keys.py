"""The keys that sign access tokens, and the JSON Web Key Set that verifies them.

The first start creates an Ed25519 key pair. :meth:`KeyRing.rotate` creates a new one and
retires the others; a retired key stays in the JWKS for ``publish_retired`` (the longest
lifetime a token can have), so tokens it signed keep verifying until they expire. Every
process re-reads which key signs every ``reload_every``, so after a rotation by one replica
the others follow. Two replicas starting together may each create a key: both are then
published and the newest signs, which is harmless.

Private keys are sealed with :class:`~m3o.services.auth.key_encryption.KeyEncryption`
before they are written. :meth:`KeyRing.ensure` (every start) first checks that the key that
signs opens with the configured key-encryption keys, failing with a one-line
:class:`~m3o.runtime.config.ConfigError` otherwise (a wrong or missing key-encryption key
must never lead to a new signing key, which would invalidate every token), then seals again
under the current key-encryption key every row stored in clear or under a previous one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.runtime.auth.tokens import ALGORITHM
from m3o.runtime.clock import Clock
from m3o.runtime.config import ConfigError
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.auth import tables
from m3o.services.auth.key_encryption import KeyEncryption

__all__ = ["KeyRing", "seal_stored_keys", "sealed_with"]

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _SigningKey:
    kid: str
    private: Ed25519PrivateKey
    loaded: datetime


class KeyRing:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        clock: Clock,
        publish_retired: timedelta,
        reload_every: timedelta,
        encryption: KeyEncryption | None = None,
    ) -> None:
        self._sessions = sessions
        self._encryption = encryption or KeyEncryption()
        self._clock = clock
        self._publish_retired = publish_retired
        self._reload_every = reload_every
        self._signing: _SigningKey | None = None

    async def ensure(self) -> None:
        """Check the stored keys open, seal them under the current key-encryption key, make
        sure a signing key exists (creating the first one) and load it.

        Raises :class:`~m3o.runtime.config.ConfigError` when a key that signs cannot be
        opened with the configured key-encryption keys; nothing is created then.
        """
        self._signing = None
        await self._seal_stored()
        await self._signing_key()

    async def _seal_stored(self) -> None:
        await seal_stored_keys(self._sessions, self._encryption)
        if not self._encryption.enabled:
            _log.warning(
                "auth.signing_keys_unencrypted",
                detail="auth.key_encryption_key is not set: private keys are stored in clear",
            )

    async def rotate(self) -> str:
        """Retire every key and start signing with a new one; returns its key id."""
        now = self._clock()
        async with transaction(self._sessions) as session:
            await session.execute(
                update(tables.keys).where(tables.keys.c.retired.is_(None)).values(retired=now)
            )
            kid = await self._create(session, now)
        self._signing = None
        return kid

    async def sign(self, claims: Mapping[str, Any]) -> str:
        key = await self._signing_key()
        return jwt.encode(dict(claims), key.private, algorithm=ALGORITHM, headers={"kid": key.kid})

    async def jwks(self) -> str:
        """The published public keys as a JSON Web Key Set document."""
        oldest_retired = self._clock() - self._publish_retired
        async with transaction(self._sessions) as session:
            rows = await session.execute(
                select(tables.keys.c.public_jwk)
                .where(or_(tables.keys.c.retired.is_(None), tables.keys.c.retired > oldest_retired))
                .order_by(tables.keys.c.created.desc(), tables.keys.c.kid)
            )
            found = [row.public_jwk for row in rows]
        return orjson.dumps({"keys": found}).decode()

    async def _signing_key(self) -> _SigningKey:
        now = self._clock()
        if self._signing is not None and now - self._signing.loaded < self._reload_every:
            return self._signing
        async with transaction(self._sessions) as session:
            row = (
                await session.execute(
                    select(tables.keys.c.kid, tables.keys.c.private_key)
                    .where(tables.keys.c.retired.is_(None))
                    .order_by(tables.keys.c.created.desc(), tables.keys.c.kid.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                private = Ed25519PrivateKey.generate()
                kid = await self._create(session, now, private)
            else:
                pem = self._encryption.open(row.kid, row.private_key)
                kid, private = row.kid, _load_private(pem)
        self._signing = _SigningKey(kid, private, now)
        return self._signing

    async def _create(
        self, session: AsyncSession, now: datetime, private: Ed25519PrivateKey | None = None
    ) -> str:
        private = private or Ed25519PrivateKey.generate()
        kid = secrets.token_hex(8)
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        await session.execute(
            tables.keys.insert().values(
                kid=kid,
                private_key=self._encryption.seal(kid, pem),
                public_jwk={**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"},
                created=now,
                retired=None,
            )
        )
        return kid


async def seal_stored_keys(sessions: SessionFactory, encryption: KeyEncryption) -> int:
    """Seal under the current key-encryption key every stored key that is not; returns how
    many were sealed again.

    Raises :class:`ConfigError` when a key that may sign does not open (a retired one that
    does not is only logged: it never signs again).
    """
    k = tables.keys.c
    resealed = 0
    async with transaction(sessions) as session:
        rows = (await session.execute(select(k.kid, k.private_key, k.retired))).all()
        for row in rows:
            try:
                pem = encryption.open(row.kid, row.private_key)
            except ConfigError:
                if row.retired is None:
                    raise
                _log.warning("auth.retired_key_unreadable", kid=row.kid)
                continue
            if encryption.needs_sealing(row.private_key):
                await session.execute(
                    update(tables.keys)
                    .where(k.kid == row.kid)
                    .values(private_key=encryption.seal(row.kid, pem))
                )
                resealed += 1
                _log.info("auth.signing_key_sealed", kid=row.kid)
    return resealed


async def sealed_with(sessions: SessionFactory) -> set[str]:
    """Ids of the key-encryption keys the keys that may sign are encrypted with."""
    k = tables.keys.c
    async with transaction(sessions) as session:
        stored = await session.scalars(select(k.private_key).where(k.retired.is_(None)))
        found = {KeyEncryption.sealed_with(value) for value in stored}
    return {kek for kek in found if kek is not None}


def _load_private(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("auth_keys holds a key that is not Ed25519")
    return key
