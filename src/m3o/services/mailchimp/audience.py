"""The Mailchimp audience: the Marketing API over httpx, or the local sink.

Mailchimp's official Python library is synchronous and unmaintained, so the two calls we
need are made with httpx through :func:`m3o.runtime.outbound.send_with_retries` (timeouts;
retries with backoff on timeouts, 429 and 5xx; any other non-2xx refused at once).

A member is keyed by the MD5 of its lower-cased email (Mailchimp's subscriber hash), so
adding is an upsert (``PUT``) and adding again changes nothing; deleting is Mailchimp's
permanent delete, and a member already gone (404) counts as deleted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import httpx

from m3o.runtime.config import Config
from m3o.runtime.email_address import mask_email
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import OutboundError, Retries, send_with_retries

__all__ = [
    "CUSTOMER_TAG",
    "Audience",
    "LocalAudience",
    "MailchimpAudience",
    "MailchimpSettings",
    "api_url_for",
    "audience_from",
    "subscriber_hash",
]

_log = get_logger(__name__)

CUSTOMER_TAG = "customer"
"""The tag every customer gets on the audience."""
_SERVICE = "mailchimp"
_NOT_FOUND = 404
_DATA_CENTRE = re.compile(r"-(us\d+)$")


class Audience(Protocol):
    """Where customers are added and deleted."""

    async def add(self, email: str) -> None: ...

    async def delete(self, email: str) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MailchimpSettings:
    api_key: str
    list_id: str
    api_url: str
    timeout: timedelta
    retries: Retries = field(default_factory=Retries)


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased email."""
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def api_url_for(api_key: str) -> str:
    """``https://usN.api.mailchimp.com`` from the key's ``-usN`` suffix; "" without one."""
    found = _DATA_CENTRE.search(api_key)
    return f"https://{found.group(1)}.api.mailchimp.com" if found else ""


class MailchimpAudience:
    """The configured audience on Mailchimp (basic auth with the API key)."""

    def __init__(self, settings: MailchimpSettings) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.api_url,
            auth=httpx.BasicAuth("m3o", settings.api_key),
            timeout=settings.timeout.total_seconds(),
        )
        self._members = f"/3.0/lists/{settings.list_id}/members"

    async def add(self, email: str) -> None:
        body = {
            "email_address": email,
            "status_if_new": "subscribed",
            "status": "subscribed",
            "tags": [CUSTOMER_TAG],
        }
        url = f"{self._members}/{subscriber_hash(email)}"
        await send_with_retries(
            lambda: self._http.put(url, json=body),
            service=_SERVICE,
            retries=self._settings.retries,
        )
        _log.info("mailchimp.added", email=mask_email(email))

    async def delete(self, email: str) -> None:
        url = f"{self._members}/{subscriber_hash(email)}/actions/delete-permanent"
        try:
            await send_with_retries(
                lambda: self._http.post(url),
                service=_SERVICE,
                retries=self._settings.retries,
            )
        except OutboundError as exc:
            if exc.status != _NOT_FOUND:
                raise
        _log.info("mailchimp.deleted", email=mask_email(email))

    async def close(self) -> None:
        await self._http.aclose()


class LocalAudience:
    """Mailchimp disabled or unconfigured: what would have been sent goes to the log and
    is kept here (``added``, ``deleted``), so the platform works offline."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.deleted: list[str] = []

    async def add(self, email: str) -> None:
        self.added.append(email)
        _log.info("mailchimp.local_add", email=mask_email(email), tag=CUSTOMER_TAG)

    async def delete(self, email: str) -> None:
        self.deleted.append(email)
        _log.info("mailchimp.local_delete", email=mask_email(email))

    async def close(self) -> None:
        return None


def audience_from(config: Config) -> Audience:
    """Mailchimp when enabled with a key, a list and a data centre; else the local sink."""
    section = config.mailchimp
    api_key = section.api_key.get_secret_value()
    api_url = section.api_url or api_url_for(api_key)
    if not (section.enabled and api_key and section.main_list_id and api_url):
        if section.enabled:
            _log.warning(
                "mailchimp.unconfigured", detail="api_key, main_list_id or data centre missing"
            )
        return LocalAudience()
    return MailchimpAudience(
        MailchimpSettings(
            api_key=api_key,
            list_id=section.main_list_id,
            api_url=api_url.rstrip("/"),
            timeout=section.timeout,
        )
    )
