"""Calls to auth made on a caller's behalf: an error the handler does not expect is logged
as ``customers.auth_call_failed`` and the caller gets Internal (see
:mod:`m3o.runtime.rpc.calls`)."""

from __future__ import annotations

from m3o.runtime.rpc.calls import Calls

__all__ = ["AUTH_CALLS"]

AUTH_CALLS = Calls("customers.auth_call_failed")
