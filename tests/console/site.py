"""Driving the console in tests: a platform in process, people with accounts, and a
cookie-keeping client that submits forms with their CSRF token as a browser would."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

import httpx

from m3o.console.web import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE
from m3o.platform.local import LocalPlatform
from support.platform import local_platform
from support.stripe_fake import StripeFake

ADMIN_PASSWORD = "console-admin-password"
PASSWORD = "a long enough secret"
ORIGIN = "http://console.test"
DEADLINE = 30.0
"""Generous: background consumers on a busy 2-core machine."""

T = TypeVar("T")

CODE = re.compile(r"signup form:\s*([A-Z]{8})\b")


@dataclass(frozen=True)
class Person:
    id: str
    email: str
    password: str
    token: str


class Browser:
    """An ``httpx`` client over the front that keeps cookies; ``submit`` posts a form with
    the CSRF token the console gave this browser."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def submit(
        self, path: str, fields: Mapping[str, str | list[str]] | None = None, *, page: str = ""
    ) -> httpx.Response:
        """POST ``fields`` to ``path`` as a form from ``page`` (default: ``path``), which is
        fetched first when this browser has no CSRF token yet."""
        if not self.csrf:
            opened = await self.get(page or path)
            assert opened.status_code < 500, opened.text
        assert self.csrf, "the console set no CSRF cookie"
        return await self.client.post(path, data={CSRF_FIELD: self.csrf, **(fields or {})})

    @property
    def csrf(self) -> str:
        return _cookie(self.client, CSRF_COOKIE)

    @property
    def session(self) -> str:
        return _cookie(self.client, SESSION_COOKIE)


def _cookie(client: httpx.AsyncClient, name: str) -> str:
    for cookie in client.cookies.jar:
        if cookie.name == name:
            return cookie.value or ""
    return ""


class Site:
    """The platform with its console, and ways to make people and browsers for it."""

    def __init__(self, platform: LocalPlatform, api: httpx.AsyncClient) -> None:
        self.platform = platform
        self.api = api
        self._browsers: list[httpx.AsyncClient] = []
        self._admin = ""

    async def call(self, path: str, body: Mapping[str, Any], token: str = "") -> dict[str, Any]:
        """A platform API call that must succeed; its JSON answer."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.api.post(path, json=dict(body), headers=headers)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    async def admin_token(self) -> str:
        if not self._admin:
            answer = await self.call("/auth/token", {"id": "admin", "secret": ADMIN_PASSWORD})
            self._admin = answer["token"]["access_token"]
        return self._admin

    async def emails_to(self, address: str) -> list[dict[str, Any]]:
        listed = await self.call(
            "/emails/listOutbox", {"to": address, "limit": 100}, await self.admin_token()
        )
        return list(listed.get("emails", []))

    async def emailed(self, address: str, pattern: re.Pattern[str], what: str) -> str:
        """The first group of ``pattern`` in the newest email to ``address`` holding it."""

        async def found() -> str:
            for email in await self.emails_to(address):
                match = pattern.search(email.get("text", ""))
                if match:
                    return match.group(1)
            return ""

        return await until(found, f"{what} for {address}")

    async def signup_code(self, address: str) -> str:
        """The newest signup code emailed to ``address``."""
        return await self.emailed(address, CODE, "a signup code")

    async def person(self, email: str, *, funds: int = 0) -> Person:
        """A customer who signed up through the platform API, funded with ``funds`` units."""
        await self.call("/signup/user", {"email": email})
        code = await self.signup_code(email)
        verified = await self.call(
            "/signup/verify", {"email": email, "token": code, "secret": PASSWORD}
        )
        person = Person(
            verified["customerID"], email, PASSWORD, verified["authToken"]["access_token"]
        )
        if funds:
            await self.call(
                "/balance/increment",
                {
                    "customer_id": person.id,
                    "delta": funds,
                    "reference": "Test funds",
                    "idempotency_key": f"funds-{person.id}",
                    "visible": True,
                },
                await self.admin_token(),
            )
        return person

    def browser(self, token: str = "") -> Browser:
        """A new browser, signed in with ``token`` when given."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.platform.app), base_url=ORIGIN
        )
        if token:
            client.cookies.set(SESSION_COOKIE, token, domain="console.test", path="/console")
        self._browsers.append(client)
        return Browser(client)

    async def close(self) -> None:
        for client in self._browsers:
            await client.aclose()


async def until(check: Callable[[], Awaitable[T]], what: str) -> T:
    """``check()``'s first truthy result, asked again until ``DEADLINE``."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def open_site(
    tmp_path: Path,
    database: str,
    stripe_fake: StripeFake,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Site]:
    """The platform in ``tmp_path`` on ``database``, Stripe being ``stripe_fake``, with the
    environment ``settings`` (``M3O_...``) on top of the console tests' own."""
    env = {
        "M3O_AUTH__ADMIN_PASSWORD": ADMIN_PASSWORD,
        "M3O_STRIPE__API_KEY": stripe_fake.api_key,
        "M3O_STRIPE__API_BASE": stripe_fake.base_url,
        "M3O_STRIPE__SUCCESS_URL": "http://console.test/console/balance?paid=1",
        "M3O_STRIPE__CANCEL_URL": "http://console.test/console/balance",
        **(settings or {}),
    }
    async with local_platform(tmp_path, env, database) as platform:
        app = platform.app
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as api:
                site = Site(platform, api)
                try:
                    yield site
                finally:
                    await site.close()


class Text(HTMLParser):
    """The visible text of a page, whitespace collapsed (``Text.of(html)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return " ".join(" ".join(parser.parts).split())
