"""Calls to other services made while serving a request, and what their failures become.

Another service's error is not the caller's business: unless the step expects it (a
``passes`` kind, handled by the caller), it is logged with its cause and the caller gets a
generic Internal error with this endpoint's id.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import Internal, M3OError
from m3o.runtime.logging import get_logger

__all__ = ["INTERNAL_DETAIL", "call", "internal_error"]

_log = get_logger(__name__)

INTERNAL_DETAIL = "Internal server error"

T = TypeVar("T")


def internal_error(ctx: CallContext, step: str, exc: M3OError) -> Internal:
    """Log why ``step`` failed and return the generic error the caller gets."""
    _log.error(
        "signup.call_failed",
        endpoint=ctx.endpoint,
        step=step,
        kind=type(exc).__name__,
        error_id=exc.id,
        detail=exc.detail,
    )
    return Internal(ctx.endpoint, INTERNAL_DETAIL)


async def call(
    ctx: CallContext,
    step: str,
    pending: Awaitable[T],
    *,
    passes: tuple[type[M3OError], ...] = (),
) -> T:
    """Await ``pending`` (the call named ``step``, e.g. ``customers.read``).

    Errors of a ``passes`` kind reach the caller as they are; any other becomes Internal.
    """
    try:
        return await pending
    except passes:
        raise
    except M3OError as exc:
        raise internal_error(ctx, step, exc) from None
