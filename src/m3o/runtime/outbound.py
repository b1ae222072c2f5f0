"""Calls to services outside the platform (Slack, Discord, Mixpanel, Mailchimp): one rule.

Every call has a deadline (the caller's ``httpx`` timeout). A timeout, a failed connection,
a 429 or a 5xx is transient: the call is made again after an exponential backoff with
jitter (a ``Retry-After`` of at most ``Retries.max_delay`` is honoured), up to
``Retries.attempts`` times in all. Any other answer that is not 2xx is refused at once:
sending the same request again would get the same answer. Failures raise
:class:`OutboundError`, whose message names the service and the status with at most
:data:`MAX_DETAIL` characters of the answer, never the request (which may hold secrets).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx

__all__ = ["MAX_DETAIL", "OutboundError", "Retries", "send_with_retries"]

MAX_DETAIL = 200
"""Characters of an error answer kept in :class:`OutboundError`'s message."""

_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500


class OutboundError(Exception):
    """A call to an outside service failed; ``transient`` when its last try was a timeout,
    a connection failure, a 429 or a 5xx (worth trying again later)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True, slots=True)
class Retries:
    attempts: int = 3
    """Tries in all (1: no retry)."""
    first_delay: timedelta = timedelta(milliseconds=500)
    """Wait before the second try; each further wait doubles, up to ``max_delay``."""
    max_delay: timedelta = timedelta(seconds=10)
    """Longest wait between tries (a longer ``Retry-After`` is not honoured)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after try number ``attempt`` (1-based) failed."""
        cap = self.max_delay.total_seconds()
        if retry_after is not None and 0 <= retry_after <= cap:
            return retry_after
        ceiling = min(cap, self.first_delay.total_seconds() * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


async def send_with_retries(
    request: Callable[[], Awaitable[httpx.Response]],
    *,
    service: str,
    retries: Retries | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> httpx.Response:
    """The first 2xx answer of ``request()`` (a fresh request each try) to ``service``.

    Raises :class:`OutboundError` on a refusal (not retried) or once every try failed.
    """
    policy = retries or Retries()
    attempt = 1
    while True:
        retry_after: float | None = None
        try:
            response = await request()
        except httpx.TimeoutException:
            failure = OutboundError(f"{service} did not answer in time", transient=True)
        except httpx.HTTPError as exc:
            failure = OutboundError(f"{service} unreachable: {type(exc).__name__}", transient=True)
        else:
            status = response.status_code
            if 200 <= status < 300:
                return response
            transient = status == _TOO_MANY_REQUESTS or status >= _SERVER_ERROR
            failure = OutboundError(
                f"{service} answered {status}: {response.text[:MAX_DETAIL]}",
                transient=transient,
                status=status,
            )
            retry_after = _seconds(response.headers.get("Retry-After"))
        if not failure.transient or attempt >= policy.attempts:
            raise failure
        await sleep(policy.delay(attempt, retry_after))
        attempt += 1


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` given in seconds; None when absent or an HTTP date."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
