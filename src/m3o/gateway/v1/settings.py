"""How the public API behaves, taken once from config section ``v1`` and the HTTP front's
settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from m3o.gateway.app import DEFAULT_MAX_BODY_BYTES
from m3o.gateway.v1.http_client import MAX_ANSWER_BYTES
from m3o.runtime.config.sections import V1Config
from m3o.runtime.rpc import DEFAULT_TIMEOUT

__all__ = ["PublicAPISettings"]


@dataclass(frozen=True, slots=True)
class PublicAPISettings:
    """How the public API (``/v1``) calls upstreams, caches keys and reads bodies (the v1
    service's own settings, the key pepper, are ``m3o.services.v1.settings.KeySettings``)."""

    upstream_timeout: float | None = 30.0
    """Deadline of a forwarded unary call, in seconds (config ``v1.upstream_timeout``);
    None: no deadline. Streams have none: they last as long as both sides keep them."""
    key_cache_ttl: timedelta = timedelta(seconds=1)
    """How long a key record (and a customer's tier) is trusted in this process."""
    fail_open_free: bool = False
    """Admit free calls, uncounted, when the counter store is unreachable."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request body accepted."""
    call_timeout: float | None = DEFAULT_TIMEOUT
    """Deadline of the key-management calls to the v1 service."""
    unit_usage_ttl: timedelta = timedelta(seconds=5)
    """How long a unit usage an API reported is trusted before it is asked again, per
    (API, project), in the background."""
    unit_usage_timeout: float = 2.0
    """Deadline of a call to an API's usage endpoint, in seconds."""
    max_answer_bytes: int = MAX_ANSWER_BYTES
    """Largest answer taken from an upstream: an HTTP body, unpacked or not, or a gRPC
    message (config ``v1.max_answer_bytes``)."""
    request_events_buffer: int = 200_000
    """Request events kept in memory while they cannot be published (config
    ``v1.request_events_buffer``); past it, the newest are spilled to durable storage
    (:class:`~m3o.gateway.v1.ports.EventSpill`)."""

    @classmethod
    def from_config(
        cls,
        config: V1Config,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        call_timeout: float | None = DEFAULT_TIMEOUT,
    ) -> PublicAPISettings:
        return cls(
            upstream_timeout=config.upstream_timeout.total_seconds(),
            key_cache_ttl=config.key_cache_ttl,
            fail_open_free=config.fail_open_free,
            request_events_buffer=config.request_events_buffer,
            max_answer_bytes=config.max_answer_bytes,
            max_body_bytes=max_body_bytes,
            call_timeout=call_timeout,
            unit_usage_ttl=config.unit_usage_ttl,
            unit_usage_timeout=config.unit_usage_timeout.total_seconds(),
        )
