"""Calls to other services made while serving a request: an error the step does not expect
is logged as ``signup.call_failed`` (the call under ``step``) and the caller gets Internal
with this endpoint's id (see :mod:`m3o.runtime.rpc.calls`)."""

from __future__ import annotations

from m3o.runtime.rpc.calls import Calls

__all__ = ["CALLS"]

CALLS = Calls("signup.call_failed", label="step")
