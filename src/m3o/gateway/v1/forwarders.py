"""One forwarder per upstream kind, chosen by the target.

Tracing on, a unary call is forwarded in a ``CLIENT`` span (``upstream <api>``) whose
context the upstream receives as ``traceparent``, whatever its kind (local, gRPC metadata,
HTTP header); a stream carries the context of the request that opened it.
"""

from __future__ import annotations

from collections.abc import Mapping

from m3o.gateway.v1.targets import GRPC, HTTP, LOCAL, Target
from m3o.gateway.v1.upstream import Codec, Forwarder, Payload, UpstreamStream
from m3o.runtime.logging.tracing import client_span, tracing_on

__all__ = ["Forwarders"]


class Forwarders:
    """A :class:`~m3o.gateway.v1.upstream.Forwarder` over one forwarder per kind."""

    def __init__(self, *, local: Forwarder, grpc: Forwarder, http: Forwarder) -> None:
        self._by_kind = {LOCAL: local, GRPC: grpc, HTTP: http}

    def _for(self, target: Target) -> Forwarder:
        found = self._by_kind.get(target.kind)
        if found is None:
            raise ValueError(f"unknown upstream kind {target.kind!r}")
        return found

    def codec(self, target: Target) -> Codec:
        return self._for(target).codec(target)

    async def unary(
        self,
        target: Target,
        request: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Payload:
        forwarder = self._for(target)
        if not tracing_on():
            return await forwarder.unary(target, request, metadata, timeout)
        sent = dict(metadata)
        attributes = {
            "m3o.upstream.api": target.api,
            "m3o.upstream.endpoint": target.endpoint,
            "m3o.upstream.kind": target.kind,
        }
        with client_span(f"upstream {target.api}", sent, attributes):
            return await forwarder.unary(target, request, sent, timeout)

    async def open(
        self,
        target: Target,
        first: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> UpstreamStream:
        return await self._for(target).open(target, first, metadata, timeout)

    async def close(self) -> None:
        for forwarder in self._by_kind.values():
            await forwarder.close()
