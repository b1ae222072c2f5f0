"""The admin service's handler: ``admin.Admin``.

DeleteData answers an error naming the services that failed (the reference logged them
and answered success); calling it again asks only those.
"""

from __future__ import annotations

from m3o.runtime.auth import CallContext, verify_admin
from m3o.runtime.errors import BadRequest, Conflict, Unavailable
from m3o.services.admin.deletion import Deletions
from m3o.services.admin.proto import admin_pb2 as pb
from m3o.services.admin.tenant import customer_of

__all__ = ["Admin"]


class Admin:
    """Implements ``admin.Admin`` (see ``proto/admin.proto``)."""

    def __init__(self, *, deletions: Deletions) -> None:
        self._deletions = deletions

    async def delete_data(
        self, request: pb.DeleteDataRequest, ctx: CallContext
    ) -> pb.DeleteDataResponse:
        verify_admin(ctx)
        tenant_id = request.tenant_id.strip()
        if not tenant_id:
            raise BadRequest(ctx.endpoint, "Missing tenant ID")
        customer_id = customer_of(tenant_id)
        if customer_id is None:
            raise BadRequest(ctx.endpoint, "Invalid tenant ID")
        outcome = await self._deletions.run(customer_id)
        if outcome.busy:
            raise Conflict(ctx.endpoint, "Deletion already under way; call again shortly")
        if outcome.failed:
            raise Unavailable(
                ctx.endpoint,
                f"Deleting data failed in: {', '.join(outcome.failed)}; call again to retry",
            )
        return pb.DeleteDataResponse(services=list(outcome.deleted))
