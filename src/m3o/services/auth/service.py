"""Wiring of the auth service.

Reads config section ``auth`` (``auth.password_hash``: Argon2id's cost) and, from its
dependencies, ``service_names`` (the accounts to ensure) and ``on_rules_changed`` (called
after a rule changes, e.g. the process's ``CachedRules.invalidate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from argon2 import PasswordHasher

from m3o.runtime.config import Config
from m3o.runtime.config.sections import PasswordHashConfig
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.auth import tables
from m3o.services.auth.handler import Auth
from m3o.services.auth.key_encryption import parse_kek, parse_kek_list
from m3o.services.auth.proto.client import SPEC, AuthHandler
from m3o.services.auth.settings import DEFAULT_MAX_TOKEN_TTL, AuthSettings

__all__ = ["PUBLIC_METHODS", "definition", "password_hasher", "settings_from"]

_log = get_logger(__name__)

PUBLIC_METHODS = frozenset({"PublicKeys", "ListRules", "Token"})
"""Served without the access rules: the rules and keys every process loads depend on them.
``ListRules`` still answers admins and services only (its handler checks); processes read
the rules with their ``platform`` service account."""


def settings_from(config: Config, service_names: Sequence[str] = ()) -> AuthSettings:
    auth = config.auth
    kek = auth.key_encryption_key.get_secret_value()
    return AuthSettings(
        access_token_ttl=auth.access_token_ttl,
        max_token_ttl=max(DEFAULT_MAX_TOKEN_TTL, auth.customer_token_ttl, auth.access_token_ttl),
        refresh_token_ttl=auth.refresh_token_ttl,
        service_secret=auth.service_secret.get_secret_value(),
        service_names=tuple(service_names),
        account_failure_limit=auth.login_failures.max_per_account,
        address_failure_limit=auth.login_failures.max_per_address,
        failure_window=auth.login_failures.window,
        key_encryption_key=parse_kek(kek) if kek else None,
        previous_key_encryption_keys=parse_kek_list(
            auth.previous_key_encryption_keys.get_secret_value()
        ),
    )


def password_hasher(config: PasswordHashConfig) -> PasswordHasher:
    """Argon2id with the configured cost; a warning when it is cheaper than the default."""
    if config.weaker_than_default:
        _log.warning(
            "auth.password_hash_weaker_than_default",
            time_cost=config.time_cost,
            memory_cost=config.memory_cost,
            parallelism=config.parallelism,
        )
    return PasswordHasher(
        time_cost=config.time_cost,
        memory_cost=config.memory_cost,
        parallelism=config.parallelism,
    )


async def _build(deps: Dependencies) -> ServiceParts:
    handler = Auth(
        sessions=deps.sessions,
        counters=deps.counters,
        hasher=password_hasher(deps.config.auth.password_hash),
        settings=settings_from(deps.config, deps.service_names),
        on_rules_changed=deps.on_rules_changed,
    )
    served: AuthHandler = handler  # checks that every RPC is implemented
    return ServiceParts(
        handlers=[Handler(SPEC, served, public=PUBLIC_METHODS)],
        on_start=[
            handler.ensure_signing_key,
            handler.seed_default_rules,
            handler.ensure_service_accounts,
            handler.restore_counters,
        ],
        crons=[
            Cron("restore-counters", timedelta(minutes=1), handler.restore_counters_if_lost),
            Cron("purge-sessions", timedelta(hours=1), handler.purge_expired_sessions),
        ],
    )


definition = ServiceDefinition(
    name="auth",
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
