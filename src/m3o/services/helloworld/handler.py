"""The example API: greets whoever calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import BadRequest
from m3o.services.helloworld.proto import helloworld_pb2 as pb

__all__ = ["DEFAULT_MESSAGES", "MAX_MESSAGES", "Helloworld"]

DEFAULT_MESSAGES = 10
MAX_MESSAGES = 1000


class Helloworld:
    async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
        return pb.CallResponse(message=f"Hello {request.name}")

    async def stream(
        self, request: pb.StreamRequest, ctx: CallContext
    ) -> AsyncIterator[pb.StreamResponse]:
        if request.messages < 0 or request.messages > MAX_MESSAGES:
            raise BadRequest(ctx.endpoint, f"messages must be between 0 and {MAX_MESSAGES}")
        for _ in range(request.messages or DEFAULT_MESSAGES):
            yield pb.StreamResponse(message=f"Hello {request.name}")
