"""Sending through the SendGrid v3 HTTP API (``POST /v3/mail/send``) with httpx.

An email rendered from our templates goes as subject, plain text and HTML; an email for a
SendGrid dynamic template goes as ``template_id`` with ``dynamic_template_data``. The IP
pool is set when configured. SendGrid answers 202 when it accepts a message; any other
status is a failure: 429 and 5xx are transient (try again later), other 4xx are not (the
request itself is wrong). Timeouts and connection errors are transient. The API key is sent
in the ``Authorization`` header only, never logged.
"""

from __future__ import annotations

from typing import Any

import httpx

from m3o.services.emails.addresses import Address
from m3o.services.emails.transport import DeliveryError, OutgoingEmail

__all__ = ["DEFAULT_API_URL", "SendgridTransport", "request_body"]

DEFAULT_API_URL = "https://api.sendgrid.com"
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500
_MAX_DETAIL = 300


def _mailbox(address: Address) -> dict[str, str]:
    found = {"email": address.email}
    if address.name:
        found["name"] = address.name
    return found


def request_body(email: OutgoingEmail, ip_pool_name: str = "") -> dict[str, Any]:
    """The JSON body of ``/v3/mail/send`` for ``email``."""
    personalization: dict[str, Any] = {"to": [_mailbox(email.to)]}
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": _mailbox(email.sender),
        "custom_args": {"email_id": email.id},
    }
    if email.provider_template:
        body["template_id"] = email.provider_template
        personalization["dynamic_template_data"] = dict(email.template_data)
    else:
        body["subject"] = email.subject
        content = [{"type": "text/plain", "value": email.text}]
        if email.html:
            content.append({"type": "text/html", "value": email.html})
        body["content"] = content
    if ip_pool_name:
        body["ip_pool_name"] = ip_pool_name
    return body


def _detail(response: httpx.Response) -> str:
    """SendGrid's error messages (``{"errors": [{"message": ...}]}``), else the body."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:_MAX_DETAIL]
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if isinstance(errors, list):
        messages = [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
        return "; ".join(m for m in messages if m)[:_MAX_DETAIL]
    return response.text[:_MAX_DETAIL]


class SendgridTransport:
    """Sends through SendGrid. ``client`` is injected by tests (a fake transport); when
    not given one is made here and closed by :meth:`close`."""

    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        ip_pool_name: str = "",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self._url = api_url.rstrip("/") + "/v3/mail/send"
        self._ip_pool_name = ip_pool_name
        self._timeout = httpx.Timeout(timeout)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()

    async def send(self, email: OutgoingEmail) -> None:
        try:
            response = await self._client.post(
                self._url,
                json=request_body(email, self._ip_pool_name),
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            raise DeliveryError("SendGrid did not answer in time") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"SendGrid unreachable: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        transient = status == _TOO_MANY_REQUESTS or status >= _SERVER_ERROR
        raise DeliveryError(
            f"SendGrid answered {status}: {_detail(response)}", permanent=not transient
        )

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
