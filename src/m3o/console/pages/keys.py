"""The API keys pages (signed-in customers; an admin, who has no project of their own, is
told to use the admin pages instead).

- ``GET /console/keys``: the person's keys (``V1.ListKeys``, newest first: description,
  scopes, created, last seen, status), each with "Roll" and "Revoke", and the form that
  creates one: a description, one checkbox per published API (``V1.ListAPIs``) plus "All
  APIs" (the scope ``*``), and when it stops working.
- ``POST /console/keys``: ``V1.GenerateKey``. The answer *is* the page showing the new
  secret, once: it is not kept anywhere (no redirect, no cookie, no server state) and, like
  every console page, is sent with ``Cache-Control: no-store``, so reloading or going back
  never shows it again. A missing description or scope, or the service's refusal, is shown
  beside the form with the person's choices kept.
- ``POST /console/keys/revoke``: ``V1.RevokeKey`` (the key stops working within the
  gateway's one-second cache), then back to the list with a message.
- ``POST /console/keys/roll``: ``V1.RollKey``: the key keeps its id, scopes and history and
  gets a new secret, shown once the same way; the old one stops working.

The service decides whose key an id is: a key of someone else's is "Not found" and is shown
on the list page as such.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.web import BASE, Console, Session
from m3o.runtime.errors import M3OError, Unauthorized
from m3o.services.v1.proto import v1_pb2

__all__ = ["routes"]

ALL_APIS = "*"
"""The scope of a key that may call every API."""

_DAY = 24 * 3600
EXPIRY_CHOICES: tuple[tuple[str, str, int], ...] = (
    ("never", "Never", 0),
    ("30d", "In 30 days", 30 * _DAY),
    ("90d", "In 90 days", 90 * _DAY),
    ("1y", "In a year", 365 * _DAY),
)
"""The form's "Expires" choices: value, label, seconds (0: never)."""

_EXPIRY_SECONDS = {value: seconds for value, _, seconds in EXPIRY_CHOICES}

_MAX_DESCRIPTION = 500
"""As the service's own limit, checked here to keep the form's text."""


@dataclass(frozen=True, slots=True)
class KeyForm:
    """What was typed into the create form (kept when it is shown again)."""

    description: str = ""
    scopes: tuple[str, ...] = ()
    expires: str = "never"


def routes(console: Console) -> list[BaseRoute]:
    """The keys pages."""
    pages = _KeysPages(console)
    return [
        console.route("/keys", pages.keys, methods=["GET", "POST"]),
        console.route("/keys/revoke", pages.revoke, methods=["POST"]),
        console.route("/keys/roll", pages.roll, methods=["POST"]),
    ]


class _KeysPages:
    """The pages' handlers over ``console``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def keys(self, request: Request) -> Response:
        """``GET``: the list and the create form; ``POST``: a new key, shown once."""
        session = await self.console.require(request)
        if request.method == "GET":
            return await self.list_page(request, session)
        typed = _key_form(await self.console.form(request))
        problem = _problem(typed)
        if problem:
            return await self.list_page(request, session, form=typed, error=problem, status=400)
        metadata = self.console.metadata(request, session)
        try:
            made = await self.console.clients.v1.generate_key(
                v1_pb2.GenerateKeyRequest(
                    scopes=list(typed.scopes),
                    description=typed.description,
                    expires_in=_EXPIRY_SECONDS[typed.expires],
                ),
                metadata=metadata,
            )
        except Unauthorized:
            raise
        except M3OError as exc:
            return await self.list_page(
                request, session, form=typed, error=exc.detail, status=exc.code
            )
        return await self.secret_page(
            request, metadata, secret=made.api_key, key_id=made.api_key_id, rolled=False
        )

    async def revoke(self, request: Request) -> Response:
        """``POST``: revokes one of the person's keys."""
        session = await self.console.require(request)
        key_id = _key_id(await self.console.form(request))
        try:
            await self.console.clients.v1.revoke_key(
                v1_pb2.RevokeRequest(id=key_id), metadata=self.console.metadata(request, session)
            )
        except Unauthorized:
            raise
        except M3OError as exc:
            return await self.list_page(
                request, session, error=_refusal(exc, key_id), status=exc.code
            )
        return self.console.redirect(
            request, BASE + "/keys", flash="The key is revoked: calls with it are refused."
        )

    async def roll(self, request: Request) -> Response:
        """``POST``: a new secret for one of the person's keys, shown once."""
        session = await self.console.require(request)
        key_id = _key_id(await self.console.form(request))
        metadata = self.console.metadata(request, session)
        try:
            rolled = await self.console.clients.v1.roll_key(
                v1_pb2.RollKeyRequest(id=key_id), metadata=metadata
            )
        except Unauthorized:
            raise
        except M3OError as exc:
            return await self.list_page(
                request, session, error=_refusal(exc, key_id), status=exc.code
            )
        return await self.secret_page(
            request, metadata, secret=rolled.api_key, key_id=rolled.api_key_id, rolled=True
        )

    async def list_page(
        self,
        request: Request,
        session: Session,
        *,
        form: KeyForm | None = None,
        error: str = "",
        status: int = 200,
    ) -> Response:
        """The list and the create form (``form`` and ``error``: shown again with its
        problem); an admin is sent on to the admin pages."""
        if session.admin:
            return self.console.render(request, "keys/admin.html", {"title": "API keys"})
        metadata = self.console.metadata(request, session)
        v1 = self.console.clients.v1
        listed = await v1.list_keys(v1_pb2.ListRequest(), metadata=metadata)
        apis = await v1.list_apis(v1_pb2.ListAPIsRequest(), metadata=metadata)
        return self.console.render(
            request,
            "keys/index.html",
            {
                "title": "API keys",
                "keys": list(listed.api_keys),
                "now": time.time(),
                "apis": list(apis.names),
                "all_apis": ALL_APIS,
                "expiry_choices": EXPIRY_CHOICES,
                "form": form or KeyForm(),
                "error": error,
                "in_form": form is not None,
            },
            status=status,
        )

    async def secret_page(
        self,
        request: Request,
        metadata: dict[str, str],
        *,
        secret: str,
        key_id: str,
        rolled: bool,
    ) -> Response:
        """The page showing ``secret`` once, with the key's details as now listed."""
        listed = await self.console.clients.v1.list_keys(v1_pb2.ListRequest(), metadata=metadata)
        key = next((k for k in listed.api_keys if k.id == key_id), None)
        scopes = tuple(key.scopes) if key is not None else ()
        public_url = self.console.settings.public_url or str(request.base_url)
        return self.console.render(
            request,
            "keys/created.html",
            {
                "title": "Your new secret" if rolled else "Your new API key",
                "secret": secret,
                "key": key,
                "rolled": rolled,
                "all_apis": ALL_APIS,
                "calls_helloworld": not scopes or ALL_APIS in scopes or "helloworld" in scopes,
                "public_url": public_url.rstrip("/"),
            },
            status=200 if rolled else 201,
        )


def _key_form(form: FormData) -> KeyForm:
    scopes = _scopes(form.getlist("scope"))
    expires = str(form.get("expires", "never"))
    return KeyForm(
        description=str(form.get("description", "")).strip(),
        scopes=scopes,
        expires=expires,
    )


def _scopes(values: Sequence[object]) -> tuple[str, ...]:
    chosen = [v.strip().lower() for v in values if isinstance(v, str) and v.strip()]
    if ALL_APIS in chosen:
        return (ALL_APIS,)
    return tuple(dict.fromkeys(chosen))


def _problem(form: KeyForm) -> str:
    """What is wrong with the create form, readably ("" when nothing)."""
    if not form.description:
        return "Enter a description: what the key is for (say, the app or machine using it)."
    if len(form.description) > _MAX_DESCRIPTION:
        return f"The description is too long: at most {_MAX_DESCRIPTION} characters."
    if not form.scopes:
        return "Choose the APIs the key may call, or All APIs."
    if form.expires not in _EXPIRY_SECONDS:
        return "Choose when the key stops working."
    return ""


def _key_id(form: FormData) -> str:
    value = form.get("id", "")
    return value.strip() if isinstance(value, str) else ""


def _refusal(exc: M3OError, key_id: str) -> str:
    """The service's refusal of a change to the key ``key_id``, readably."""
    if not key_id:
        return "No key was named: use the buttons beside a key."
    if exc.code == 404:
        return "That key was not found among your keys: it may have been revoked already."
    return exc.detail
