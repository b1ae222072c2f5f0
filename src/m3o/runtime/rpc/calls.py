"""Calling another service while serving a request, and what its failures become.

Another service's error is not the caller's business. Unless the handler expects it (a
``passes`` kind, which reaches the handler as it is, to answer in its own words), it is
logged with its cause and the caller gets a generic error under the handler's own endpoint
id: Unavailable (503: worth trying again) when the other service was unavailable or out of
time, else Internal (500). Each module names its log event once::

    _calls = Calls("signup.call_failed")

    found = await _calls.call(ctx, "customers.read", customers.read(request), passes=(NotFound,))

    try:
        issued = await auth.grant(request)
    except Forbidden:
        ...  # answered in the handler's words
    except M3OError as exc:
        raise _calls.failure(ctx, "auth.grant", exc) from None

The event's fields: ``endpoint`` (the handler's), the call's name (under ``label``,
``call`` unless told), the error's ``kind``, ``error_id`` and ``detail``, then whatever
``context`` the handler adds (``customer_id=...``). Only errors of the runtime's kinds are
handled here; anything else is a crash, which the dispatcher turns into Internal itself.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import Internal, M3OError, Unavailable
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc import INTERNAL_DETAIL, UNAVAILABLE_DETAIL

__all__ = ["Calls"]

_log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Calls:
    """How one module's calls to other services fail."""

    event: str
    """The log event of a failed call (``signup.call_failed``)."""
    label: str = "call"
    """The log field that names the call."""

    def failure(
        self, ctx: CallContext, name: str, exc: M3OError, **context: str
    ) -> Internal | Unavailable:
        """Log why the call ``name`` failed and return the generic error the caller gets:
        Unavailable when ``exc`` is one (DeadlineExceeded included), else Internal."""
        _log.error(
            self.event,
            endpoint=ctx.endpoint,
            **{self.label: name},
            kind=type(exc).__name__,
            error_id=exc.id,
            detail=exc.detail,
            **context,
        )
        if isinstance(exc, Unavailable):
            return Unavailable(ctx.endpoint, UNAVAILABLE_DETAIL)
        return Internal(ctx.endpoint, INTERNAL_DETAIL)

    async def call(
        self,
        ctx: CallContext,
        name: str,
        pending: Awaitable[T],
        *,
        passes: tuple[type[M3OError], ...] = (),
        **context: str,
    ) -> T:
        """Await ``pending``, the call named ``name`` (``customers.read``).

        Errors of a ``passes`` kind reach the caller as they are; any other error kind is
        logged and becomes Unavailable or Internal (see :meth:`failure`).
        """
        try:
            return await pending
        except passes:
            raise
        except M3OError as exc:
            raise self.failure(ctx, name, exc, **context) from None
