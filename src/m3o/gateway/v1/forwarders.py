"""One forwarder per upstream kind, chosen by the target."""

from __future__ import annotations

from collections.abc import Mapping

from m3o.gateway.v1.targets import GRPC, HTTP, LOCAL, Target
from m3o.gateway.v1.upstream import Codec, Forwarder, Payload, UpstreamStream

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
        return await self._for(target).unary(target, request, metadata, timeout)

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
