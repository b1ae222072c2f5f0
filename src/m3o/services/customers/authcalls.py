"""Calls to auth made on a caller's behalf, and what their failures become."""

from __future__ import annotations

from collections.abc import Awaitable

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import Internal, M3OError
from m3o.runtime.logging import get_logger

__all__ = ["INTERNAL_DETAIL", "call_auth", "internal_error"]

_log = get_logger(__name__)

INTERNAL_DETAIL = "Internal server error"


def internal_error(ctx: CallContext, call: str, exc: M3OError) -> Internal:
    """Log why auth's ``call`` failed and return the generic error the caller gets."""
    _log.error(
        "customers.auth_call_failed",
        endpoint=ctx.endpoint,
        call=call,
        kind=type(exc).__name__,
        error_id=exc.id,
        detail=exc.detail,
    )
    return Internal(ctx.endpoint, INTERNAL_DETAIL)


async def call_auth(
    ctx: CallContext,
    call: str,
    pending: Awaitable[object],
    *,
    done_if: tuple[type[M3OError], ...] = (),
) -> None:
    """Await auth's ``call``. Errors of a ``done_if`` kind mean the work was already done;
    any other error is ours, not the caller's: Internal."""
    try:
        await pending
    except done_if:
        return
    except M3OError as exc:
        raise internal_error(ctx, call, exc) from None
