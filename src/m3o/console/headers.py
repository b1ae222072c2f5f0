"""The security headers of every console answer (pages and static files alike).

- ``Content-Security-Policy``: scripts, styles, images and fetches from the console's own
  origin only (no inline script or style, no ``eval``, nothing from a CDN: the chart library
  is vendored), no plugins, no framing, no ``<base>``; forms post to the console itself,
  or to Stripe Checkout, where a top-up goes on.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``X-Frame-Options: DENY`` (older browsers), ``Cross-Origin-Opener-Policy: same-origin``.
- ``Cache-Control: no-store`` on pages (they show balances, keys and ledgers); static files
  may be cached for an hour.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SecurityHeaders"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self' https://checkout.stripe.com",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

_COMMON = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware adding the headers above; ``static_prefix`` marks cacheable files."""

    def __init__(self, app: ASGIApp, *, static_prefix: str) -> None:
        self._app = app
        self._static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(self._static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _COMMON.items():
                    headers[name] = value
                headers["cache-control"] = "public, max-age=3600" if static else "no-store"
            await send(message)

        await self._app(scope, receive, send_with_headers)
