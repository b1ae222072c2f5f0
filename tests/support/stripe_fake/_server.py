"""The fake served over HTTP, and the controls tests drive it with (see the package)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import stripe
from starlette.types import Receive, Scope, Send

from support.http_fakes import served
from support.stripe_fake._billing import StripeApi
from support.stripe_fake._customers import Card, Outcome
from support.stripe_fake._errors import StripeError, check_params, list_param
from support.stripe_fake._form import FormError, decode_form
from support.stripe_fake._store import Obj, RequestContext, Route, snapshot

__all__ = ["RecordedRequest", "StripeFake"]

IDEMPOTENCY_KEY_LIFETIME = 24 * 3600
"""Seconds Stripe keeps an idempotency key (and the answer under it)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, and how it answered."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int
    replayed: bool
    """Answered from an earlier request with the same idempotency key."""
    stripe_version: str | None


@dataclass
class _Failure:
    method: str
    path: str
    remaining: int
    error: StripeError


@dataclass(frozen=True)
class _Kept:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: bytes
    created: int


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str]


class StripeFake:
    """Stripe's API in memory, served over HTTP; the test controls are its public methods."""

    def __init__(
        self, *, api_key: str = "sk_test_m3o", clock: Callable[[], int] | None = None
    ) -> None:
        self.api_key = api_key
        """The only secret key the fake accepts; others are answered 401."""
        self._clock = clock or (lambda: int(time.time()))
        self._lock = threading.RLock()
        self._api = StripeApi(self._clock)
        self._routes = self._api.routes()
        self._requests: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._kept: dict[str, _Kept] = {}
        self._base_url: str | None = None

    # -- serving -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the ``api`` base address for the library."""
        if self._base_url is None:
            raise RuntimeError("the Stripe fake is not running: use `with fake.running():`")
        return self._base_url

    @contextmanager
    def running(self) -> Iterator[StripeFake]:
        """Serves the fake on a free port until the block ends."""
        with served(self) as url:
            self._base_url = url
            try:
                yield self
            finally:
                self._base_url = None

    def client(self, **options: Any) -> stripe.StripeClient:
        """A ``StripeClient`` of this fake, without retries unless ``options`` ask for them."""
        options.setdefault("max_network_retries", 0)
        return stripe.StripeClient(self.api_key, base_addresses={"api": self.base_url}, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        answer = self.handle(
            scope["method"], scope["path"], scope["query_string"].decode("latin-1"), body, headers
        )
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        raw_headers += [
            (name.lower().encode(), value.encode()) for name, value in answer.headers.items()
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": answer.body})

    # -- one request ---------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> _Answer:
        """Answers one request (``headers`` with lower-case names), and records it."""
        with self._lock:
            request_id = self._api.new_id("req")
            key = headers.get("idempotency-key") if method == "POST" else None
            params: dict[str, Any] = {}
            replayed = False
            try:
                params = decode_form(body.decode() if method == "POST" else query)
                status, payload, replayed = self._answer(
                    method, path, params, key, headers, request_id
                )
            except FormError as error:
                status, payload = 400, orjson.dumps(StripeError.invalid(str(error)).body())
            except StripeError as error:
                status, payload = error.status, orjson.dumps(error.body())
            self._requests.append(
                RecordedRequest(
                    method, path, params, key, status, replayed, headers.get("stripe-version")
                )
            )
            answer_headers = {"Request-Id": request_id, "Stripe-Version": stripe.api_version}
            if key is not None:
                answer_headers["Idempotency-Key"] = key
            if replayed:
                answer_headers["Idempotent-Replayed"] = "true"
            return _Answer(status, payload, answer_headers)

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        key: str | None,
        headers: dict[str, str],
        request_id: str,
    ) -> tuple[int, bytes, bool]:
        self._authenticate(headers.get("authorization", ""))
        self._injected_failure(method, path)
        route, ids = self._route(method, path)
        if key is not None:
            kept = self._kept_answer(key, method, path, params)
            if kept is not None:
                return kept.status, kept.body, True
        saved = self._api.checkpoint() if method != "GET" else None
        try:
            check_params(params, route.params.allowed, route.params.unsupported)
            self._api.context = RequestContext(request_id, key)
            result = self._api.render(route.handler(params, *ids), _expand_paths(params))
            status, payload = 200, orjson.dumps(result)
        except StripeError as error:
            # Stripe's requests are all or nothing, except that a declined payment leaves
            # its traces (the failed charge, the intent's status and error).
            if saved is not None and error.status != 402:
                self._api.restore(saved)
            if not error.kept or key is None:
                raise
            status, payload = error.status, orjson.dumps(error.body())
        except Exception as error:
            # A bug of the fake: answered as Stripe's 500, named so the test shows it.
            if saved is not None:
                self._api.restore(saved)
            raise StripeError(500, "api_error", f"The Stripe fake failed: {error!r}") from error
        finally:
            self._api.context = None
        if key is not None:
            self._kept[key] = _Kept(method, path, params, status, payload, self._clock())
        return status, payload, False

    def _authenticate(self, authorization: str) -> None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        if key != self.api_key:
            raise StripeError(
                401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}****{key[-4:]}"
            )

    def _injected_failure(self, method: str, path: str) -> None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.method == method and _matches(failure.path, path):
                failure.remaining -= 1
                raise failure.error

    def _route(self, method: str, path: str) -> tuple[Route, list[str]]:
        for route in self._routes:
            if route.method == method:
                ids = _match(route.template, path)
                if ids is not None:
                    return route, ids
        raise StripeError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    def _kept_answer(
        self, key: str, method: str, path: str, params: dict[str, Any]
    ) -> _Kept | None:
        kept = self._kept.get(key)
        if kept is None or self._clock() - kept.created >= IDEMPOTENCY_KEY_LIFETIME:
            return None
        if (kept.method, kept.path) != (method, path):
            raise StripeError(
                400,
                "idempotency_error",
                f"Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{kept.method} {kept.path}' vs '{method} {path}'). Try using a "
                f"key other than '{key}' if you meant to execute a different request.",
            )
        if kept.params != params:
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
            )
        return kept

    # -- test controls -------------------------------------------------------------------

    def reset(self) -> None:
        """Forgets every object, event, request, injected failure and idempotency key."""
        with self._lock:
            self._api.clear()
            self._requests.clear()
            self._failures.clear()
            self._kept.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The requests to one endpoint; ``path`` may use ``*`` or ``{id}`` for an id."""
        return [r for r in self.requests if r.method == method and _matches(path, r.path)]

    @property
    def events(self) -> list[Obj]:
        """Every event the changes so far would have sent, oldest first."""
        with self._lock:
            return [snapshot(event) for event in self._api.events]

    def events_of(self, event_type: str) -> list[Obj]:
        return [event for event in self.events if event["type"] == event_type]

    def get(self, object_id: str) -> Obj:
        """The object ``object_id`` as the API would show it now (KeyError if none)."""
        with self._lock:
            return snapshot(self._api.objects[object_id])

    def fail_next(
        self, method: str, path: str, *, times: int = 1, error: StripeError | None = None
    ) -> None:
        """The next ``times`` requests to ``METHOD path`` (``*`` or ``{id}`` for ids) answer
        ``error`` (500 ``api_error`` by default) without doing anything."""
        with self._lock:
            self._failures.append(_Failure(method, path, times, error or StripeError.api_error()))

    def add_price(
        self,
        *,
        unit_amount: int,
        currency: str = "usd",
        interval: str | None = "month",
        price_id: str | None = None,
        product_name: str = "M3O",
        nickname: str | None = None,
    ) -> Obj:
        """A price of a new product: recurring each ``interval``, or one-time if None."""
        with self._lock:
            price = self._api.add_price(
                unit_amount=unit_amount,
                currency=currency,
                interval=interval,
                price_id=price_id,
                product_name=product_name,
                nickname=nickname,
            )
            return snapshot(price)

    def add_card(
        self,
        *,
        brand: str = "visa",
        last4: str = "4242",
        exp_month: int = 12,
        exp_year: int = 2034,
        outcome: Outcome = "succeeds",
        decline_code: str = "generic_decline",
    ) -> str:
        """A new card payment method, attached to no one; returns its id."""
        card = Card(brand, last4, exp_month, exp_year, outcome, decline_code)
        with self._lock:
            return str(self._api.add_card(card)["id"])

    def authenticate(self, intent_id: str) -> Obj:
        """The customer passes 3-D Secure on a ``requires_action`` Payment/SetupIntent."""
        with self._lock:
            return snapshot(self._api.authenticate(intent_id))

    def fail_authentication(self, intent_id: str) -> Obj:
        """The customer fails 3-D Secure: the intent is back to ``requires_payment_method``."""
        with self._lock:
            return snapshot(self._api.fail_authentication(intent_id))

    def complete_checkout(self, session_id: str, payment_method: str = "pm_card_visa") -> Obj:
        """The customer completes the Checkout page with ``payment_method``."""
        with self._lock:
            return snapshot(self._api.complete_checkout(session_id, payment_method))

    def renew_subscription(self, subscription_id: str) -> Obj:
        """The subscription's next period starts: returns its invoice (paid, or open if the
        card failed, the subscription then ``past_due``)."""
        with self._lock:
            return snapshot(self._api.renew(subscription_id))


def _expand_paths(params: dict[str, Any]) -> list[str]:
    return [str(path) for path in list_param(params, "expand")]


def _match(template: str, path: str) -> list[str] | None:
    """The ids in ``path`` where ``template`` has ``{...}`` or ``*``, or None: no match."""
    want, got = template.strip("/").split("/"), path.strip("/").split("/")
    if len(want) != len(got):
        return None
    ids = []
    for expected, actual in zip(want, got, strict=True):
        if expected == "*" or (expected.startswith("{") and expected.endswith("}")):
            if not actual:
                return None
            ids.append(actual)
        elif expected != actual:
            return None
    return ids


def _matches(template: str, path: str) -> bool:
    return _match(template, path) is not None
