"""One run of the end-to-end check, against the platform's public URL.

1. Force-delete the test customer (up to 3 tries; NotFound counts as done).
2. ``POST /signup/user``; wait up to ``code_wait`` for the code: stored by ``Mailin`` after
   the request, or (no mail transport) the newest verification email to the address in
   the emails outbox.
3. ``POST /signup/verify`` with a random password; wait until ``customers.Read`` says
   verified.
4. ``POST /v1/api/keys/generate`` with the customer's token, scope ``*``, expiring in an
   hour.
5. ``balance.Increment`` 1,000,000 (``E2E top up``, not visible, the run's idempotency key).
6. Every example marked ``run_check`` of every published API, through
   ``/v1/<api>/<endpoint>`` with the key; any answer but 200 is a failure.

Steps 1 to 5 stop the run at their first failure (setup or signup); step 6 records each
failing example and goes on. Calls to the platform over HTTP are made once each (a retry
would hide what a customer sees); each has a deadline.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import M3OError, NotFound
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import MAX_DETAIL, OutboundError, Retries, send_with_retries
from m3o.runtime.store import SessionFactory
from m3o.services.balance.proto import balance_pb2 as balance_pb
from m3o.services.balance.proto.client import BalanceService
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.emails.proto.client import EmailsService
from m3o.services.endtoend import records
from m3o.services.endtoend.examples import checked_examples
from m3o.services.endtoend.mail import code_in
from m3o.services.endtoend.settings import EndtoendSettings
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.client import PublicapiService

__all__ = [
    "DELETE_TRIES",
    "KEY_LIFETIME",
    "TOP_UP",
    "TOP_UP_REFERENCE",
    "CheckRun",
    "ExampleFailure",
    "Outcome",
    "Platform",
]

_log = get_logger(__name__)

T = TypeVar("T")

DELETE_TRIES = 3
TOP_UP = 1_000_000
"""Units (1/10,000ths of a cent) the test customer is funded with: $1."""
TOP_UP_REFERENCE = "E2E top up"
KEY_LIFETIME = 3600
"""Seconds the run's API key works: it is for this run only."""
_VERIFIED = frozenset({"verified", "active"})
_ONCE = Retries(attempts=1)


@dataclass(frozen=True, slots=True)
class ExampleFailure:
    api: str
    endpoint: str
    title: str
    error: str

    def describe(self) -> str:
        where = " ".join(part for part in (self.api, self.endpoint, self.title) if part)
        return f"Error running example {where}: {self.error}"


@dataclass
class Outcome:
    """What a run found. It passes when setup and signup passed and the examples of at
    most one API failed."""

    setup_error: str = ""
    signup_error: str = ""
    example_failures: list[ExampleFailure] = field(default_factory=list)

    @property
    def failed_apis(self) -> set[str]:
        return {failure.api for failure in self.example_failures}

    @property
    def passed(self) -> bool:
        return not self.setup_error and not self.signup_error and len(self.failed_apis) <= 1

    @property
    def error(self) -> str:
        """Every failure, one sentence each; empty when nothing failed."""
        if self.setup_error or self.signup_error:
            return self.setup_error or self.signup_error
        return ". ".join(failure.describe() for failure in self.example_failures)

    @property
    def alert_action(self) -> str | None:
        """``signup`` when setup or signup failed, ``examples`` when an example did."""
        if self.setup_error or self.signup_error:
            return "signup"
        return "examples" if self.example_failures else None


class _Stop(Exception):
    """A setup or signup step failed: the run ends here."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _setup(message: str) -> _Stop:
    return _Stop("setup", message)


def _signup(message: str) -> _Stop:
    return _Stop("signup", message)


def _described(exc: M3OError) -> str:
    return f"{exc.id} {exc.code}: {exc.detail}"


@dataclass(frozen=True, slots=True)
class Platform:
    """The services a run calls, with the endtoend service's own account."""

    customers: CustomersService
    emails: EmailsService
    balance: BalanceService
    publicapi: PublicapiService


class CheckRun:
    """One run (see the module docstring); :meth:`run` returns its :class:`Outcome`."""

    def __init__(
        self,
        *,
        run_id: str,
        settings: EndtoendSettings,
        http: httpx.AsyncClient,
        platform: Platform,
        sessions: SessionFactory,
        clock: Clock = utc_now,
    ) -> None:
        self._run_id = run_id
        self._settings = settings
        self._http = http
        self._platform = platform
        self._sessions = sessions
        self._clock = clock
        self._timeout = settings.request_timeout.total_seconds()

    async def run(self) -> Outcome:
        outcome = Outcome()
        try:
            await self._delete_customer()
            customer_id, token = await self._sign_up()
            key = await self._generate_key(token)
            await self._top_up(customer_id)
            apis = await self._published()
        except _Stop as stop:
            if stop.kind == "setup":
                outcome.setup_error = stop.message
            else:
                outcome.signup_error = stop.message
            return outcome
        for api in apis:
            outcome.example_failures.extend(await self._run_examples(api, key))
        return outcome

    # 1. a clean slate
    async def _delete_customer(self) -> None:
        request = customers_pb.DeleteRequest(email=self._settings.email, force=True)
        last = ""
        for _ in range(DELETE_TRIES):
            try:
                await self._platform.customers.delete(request, timeout=self._timeout)
            except NotFound:
                return
            except M3OError as exc:
                last = _described(exc)
                continue
            return
        raise _setup(f"Error while cleaning up the existing customer: {last}")

    # 2 and 3. signup
    async def _sign_up(self) -> tuple[str, str]:
        email = self._settings.email
        asked = self._clock()
        try:
            await self._post("signup/user", {"email": email})
        except OutboundError as exc:
            raise _signup(f"Error requesting the verification email: {exc}") from None
        code = await self._wait_for(self._code_since(asked))
        if code is None:
            raise _signup(f"No verification code arrived within {self._settings.code_wait}")
        password = secrets.token_urlsafe(24)
        try:
            answer = await self._post(
                "signup/verify", {"email": email, "token": code, "secret": password}
            )
            session = answer.json()
            customer_id = str(session["customerID"])
            token = str(session["authToken"]["access_token"])
        except OutboundError as exc:
            raise _signup(f"Error completing the signup: {exc}") from None
        except (ValueError, KeyError, TypeError):
            raise _signup("Error completing the signup: unexpected answer") from None
        last: list[str] = []
        verified = await self._wait_for(self._verified(last))
        if verified is None:
            seen = last[-1] if last else "nothing"
            raise _signup(f"The customer did not read as verified (last: {seen})")
        return customer_id, token

    def _code_since(self, asked: datetime) -> Callable[[], Awaitable[str | None]]:
        since_seconds = int(asked.timestamp())

        async def look() -> str | None:
            async with self._sessions() as session:
                code = await records.code_since(session, asked)
            if code is not None or not self._settings.read_outbox:
                return code
            try:
                listed = await self._platform.emails.list_outbox(
                    emails_pb.ListOutboxRequest(to=self._settings.email, limit=5),
                    timeout=self._timeout,
                )
            except M3OError as exc:
                _log.warning("endtoend.outbox_unreadable", run_id=self._run_id, error=str(exc))
                return None
            for email in listed.emails:  # newest first
                found = code_in(email.text) if email.created >= since_seconds else None
                if found is not None:
                    return found
            return None

        return look

    def _verified(self, seen: list[str]) -> Callable[[], Awaitable[bool | None]]:
        async def look() -> bool | None:
            try:
                read = await self._platform.customers.read(
                    customers_pb.ReadRequest(email=self._settings.email), timeout=self._timeout
                )
            except M3OError as exc:
                seen.append(_described(exc))
                return None
            seen.append(f"status {read.customer.status or 'none'}")
            return True if read.customer.status in _VERIFIED else None

        return look

    async def _wait_for(self, look: Callable[[], Awaitable[T | None]]) -> T | None:
        """``look()``'s first answer that is not None, asked every poll interval for up to
        ``code_wait``; None when none came."""
        deadline = time.monotonic() + self._settings.code_wait.total_seconds()
        while True:
            found = await look()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(self._settings.poll_interval.total_seconds())

    # 4. a key
    async def _generate_key(self, token: str) -> str:
        body = {"description": "endtoend check", "scopes": ["*"], "expires_in": KEY_LIFETIME}
        try:
            answer = await self._post("v1/api/keys/generate", body, bearer=token)
            return str(answer.json()["api_key"])
        except OutboundError as exc:
            raise _setup(f"Error generating a key: {exc}") from None
        except (ValueError, KeyError, TypeError):
            raise _setup("Error generating a key: unexpected answer") from None

    # 5. funds
    async def _top_up(self, customer_id: str) -> None:
        request = balance_pb.IncrementRequest(
            customer_id=customer_id,
            delta=TOP_UP,
            visible=False,
            reference=TOP_UP_REFERENCE,
            idempotency_key=f"endtoend:{self._run_id}",
        )
        try:
            await self._platform.balance.increment(request, timeout=self._timeout)
        except M3OError as exc:
            raise _setup(f"Error adding to the balance: {_described(exc)}") from None

    async def _published(self) -> list[publicapi_pb.PublicAPI]:
        try:
            listed = await self._platform.publicapi.list(
                publicapi_pb.ListRequest(omit_descriptors=True), timeout=self._timeout
            )
        except M3OError as exc:
            raise _setup(f"Error listing the APIs: {_described(exc)}") from None
        return list(listed.apis)

    # 6. the examples
    async def _run_examples(self, api: publicapi_pb.PublicAPI, key: str) -> list[ExampleFailure]:
        try:
            examples = checked_examples(api.examples_json)
        except ValueError as exc:
            return [ExampleFailure(api.name, "", "", str(exc))]
        failures: list[ExampleFailure] = []
        for example in examples:
            path = f"v1/{quote(api.name)}/{quote(example.endpoint, safe='/')}"
            try:
                await self._post(path, example.request, bearer=key)
            except OutboundError as exc:
                failure = ExampleFailure(api.name, example.endpoint, example.title, str(exc))
                _log.warning(
                    "endtoend.example_failed",
                    run_id=self._run_id,
                    api=api.name,
                    endpoint=example.endpoint,
                    title=example.title,
                    error=failure.error,
                )
                failures.append(failure)
        return failures

    async def _post(self, path: str, body: Any, *, bearer: str = "") -> httpx.Response:
        """POST ``body`` to ``<api_url>/<path>`` once; anything but 200 raises
        :class:`OutboundError` naming the path, the status and the start of the answer."""
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        url = f"{self._settings.api_url}/{path}"
        content = orjson.dumps(body)
        answer = await send_with_retries(
            lambda: self._http.post(url, content=content, headers=headers, timeout=self._timeout),
            service=f"/{path}",
            retries=_ONCE,
        )
        if answer.status_code != 200:
            raise OutboundError(
                f"/{path} answered {answer.status_code}: {answer.text[:MAX_DETAIL]}",
                transient=False,
                status=answer.status_code,
            )
        return answer
