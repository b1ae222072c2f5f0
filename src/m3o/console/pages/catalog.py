"""The catalog: the APIs anyone can browse, each API's page, and trying an endpoint with a
key. No page needs a sign-in (the header still shows who is signed in).

- ``GET /console/apis``: every API (``Explore.Index``), or those matching ``q`` and the
  chosen ``category`` (``Explore.Search``), as cards with name, summary (the first
  paragraph of the description), category and icon; the categories of the filter come
  from ``Explore.ListCategories``.
- ``GET /console/apis/<name>``: the API (``Explore.API``) and its prices
  (``Explore.Pricing``): description, endpoints with their ``/v1`` path, price per call
  (free at 0) and monthly free quota, the example requests and responses, the paths of
  its OpenAPI document and the "Try it" form. An unknown API is a 404 page.
- ``GET /console/apis/<name>/openapi.json``: the OpenAPI document as stored.
- ``POST /console/apis/<name>/try``: calls the chosen endpoint through the front's own
  ``/v1/<api>/<endpoint>`` in process, with ``Authorization: Bearer <key>`` and the
  person's client address, and shows the HTTP status and the JSON answer (or the error
  JSON). Bad input (no key, an unknown or streaming endpoint, a request that is not a JSON
  object) is refused on the form with 400 before anything is called. The key is put back
  into the form (it is the person's own) and never logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.markdown import description_html, summary_of
from m3o.console.web import Console
from m3o.gateway.context import client_address
from m3o.runtime.errors import NotFound
from m3o.runtime.rpc.endpoints import main_service
from m3o.services.explore.proto import explore_pb2

__all__ = ["routes"]

MAX_REQUEST = 1024 * 1024
"""The largest request the try form sends (the gateway's own limit on a JSON body)."""
MAX_KEY = 512
MAX_ANSWER = 256 * 1024
"""An answer longer than this is cut on the page."""
MAX_TERM = 200
TRY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Example:
    title: str
    request: str
    response: str


@dataclass(slots=True)
class EndpointView:
    """One endpoint as the API's page shows it."""

    name: str
    path: str
    """Under ``/v1``: ``/helloworld/Call``."""
    price: int = 0
    quota: int = 0
    stream: str = ""
    """``server``, ``client`` or ``bidirectional`` for a streaming endpoint, else empty."""
    summary: str = ""
    examples: list[Example] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "endpoint-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def example_request(self) -> str:
        return self.examples[0].request if self.examples else "{}"


@dataclass(frozen=True, slots=True)
class Loaded:
    """An API's catalog entry, its endpoints and its OpenAPI document."""

    api: explore_pb2.PublicAPI
    endpoints: list[EndpointView]
    document: dict[str, Any]


@dataclass(slots=True)
class Trial:
    """What the try form holds, and what the call answered."""

    endpoint: str = ""
    key: str = ""
    request: str = ""
    error: str = ""
    status: int = 0
    answer: str = ""


def routes(console: Console) -> list[BaseRoute]:
    """The catalog pages."""

    async def index(request: Request) -> Response:
        await console.session(request)
        term = request.query_params.get("q", "").strip()[:MAX_TERM]
        category = request.query_params.get("category", "").strip()[:MAX_TERM]
        metadata = console.metadata(request)
        categories = await console.clients.explore.list_categories(
            explore_pb2.ListCategoriesRequest(), metadata=metadata
        )
        if term or category:
            found = await console.clients.explore.search(
                explore_pb2.SearchRequest(
                    search_term=term, categories=[category] if category else []
                ),
                metadata=metadata,
            )
            apis = list(found.apis)
        else:
            listed = await console.clients.explore.index(
                explore_pb2.IndexRequest(), metadata=metadata
            )
            apis = list(listed.apis)
        cards = [
            {
                "name": api.name,
                "display_name": api.display_name or api.name,
                "summary": summary_of(api.description),
                "category": api.category,
                "icon": icon_of(api.icon),
            }
            for api in apis
        ]
        return console.render(
            request,
            "catalog/index.html",
            {
                "title": "APIs",
                "apis": cards,
                "term": term,
                "category": category,
                "categories": list(categories.categories),
                "filtered": bool(term or category),
            },
        )

    async def load(request: Request) -> Loaded:
        metadata = console.metadata(request)
        found = await console.clients.explore.api(
            explore_pb2.APIRequest(name=request.path_params["name"]), metadata=metadata
        )
        pricing = await console.clients.explore.pricing(
            explore_pb2.PricingRequest(), metadata=metadata
        )
        api = found.api
        item = next(
            (price for price in pricing.prices if price.name.lower() == api.name.lower()), None
        )
        document = _document(api.open_api_json)
        endpoints = endpoints_of(
            api.name,
            shown=[endpoint.name for endpoint in found.summary.endpoints],
            prices=dict(item.pricing) if item else dict(api.pricing),
            quotas=dict(item.quotas) if item else dict(api.quotas),
            document=document,
            examples=_examples(api.examples_json),
        )
        return Loaded(api, endpoints, document)

    def api_page(
        request: Request, loaded: Loaded, trial: Trial | None = None, status: int = 200
    ) -> Response:
        api, endpoints = loaded.api, loaded.endpoints
        callable_ = [endpoint for endpoint in endpoints if not endpoint.stream]
        trial = trial or Trial()
        if not trial.endpoint and callable_:
            trial.endpoint = callable_[0].name
        if not trial.request:
            chosen = _find(callable_, trial.endpoint)
            trial.request = chosen.example_request if chosen else "{}"
        origin = _origin(console.settings.public_url, request)
        return console.render(
            request,
            "catalog/api.html",
            {
                "title": api.display_name or api.name,
                "api": api,
                "icon": icon_of(api.icon),
                "description": description_html(api.description),
                "endpoints": endpoints,
                "callable": callable_,
                "paths": _paths(loaded.document),
                "trial": trial,
                "origin": origin,
                "websocket": ("wss" if origin.startswith("https:") else "ws")
                + ":"
                + origin.partition(":")[2],
                "examples": {endpoint.name: endpoint.example_request for endpoint in callable_},
            },
            status=status,
        )

    async def api(request: Request) -> Response:
        await console.session(request)
        return api_page(request, await load(request))

    async def openapi(request: Request) -> Response:
        found = await console.clients.explore.api(
            explore_pb2.APIRequest(name=request.path_params["name"]),
            metadata=console.metadata(request),
        )
        if not found.api.open_api_json:
            raise NotFound("console.catalog", f"{found.api.name} publishes no OpenAPI document")
        return Response(found.api.open_api_json, media_type="application/json")

    async def try_it(request: Request) -> Response:
        form = await console.form(request)
        await console.session(request)
        trial = Trial(
            endpoint=str(form.get("endpoint", "")).strip(),
            key=str(form.get("key", "")).strip(),
            request=str(form.get("request", "")) or "{}",
        )
        loaded = await load(request)
        body, trial.error = _checked(trial, loaded.endpoints)
        endpoint = _find(loaded.endpoints, trial.endpoint)
        if trial.error or endpoint is None:
            return api_page(request, loaded, trial, status=400)
        trial.endpoint = endpoint.name
        trial.status, trial.answer = await _call(request, endpoint.path, trial.key, body)
        return api_page(request, loaded, trial)

    return [
        console.route("/apis", index),
        console.route("/apis/{name}", api),
        console.route("/apis/{name}/openapi.json", openapi),
        console.route("/apis/{name}/try", try_it, methods=["POST"]),
    ]


def _checked(trial: Trial, endpoints: list[EndpointView]) -> tuple[bytes, str]:
    """The request body to send, or a readable reason not to send it."""
    endpoint = _find(endpoints, trial.endpoint)
    if endpoint is None:
        return b"", "Choose one of this API's endpoints."
    if endpoint.stream:
        return b"", (
            f"{endpoint.name} is a streaming endpoint: it is served over a websocket and "
            "cannot be tried from this form."
        )
    if not trial.key:
        return b"", "Enter an API key (create one on the Keys page)."
    if len(trial.key) > MAX_KEY or not trial.key.isprintable() or " " in trial.key:
        return b"", "That API key is not valid: paste the key as it was shown."
    text = trial.request.strip() or "{}"
    if len(text.encode()) > MAX_REQUEST:
        return b"", "The request is too large (at most 1 MiB)."
    try:
        parsed: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return b"", f"The request is not valid JSON: {exc}."
    if not isinstance(parsed, dict):
        return b"", 'The request must be a JSON object, such as {"name": "Alice"}.'
    return orjson.dumps(parsed), ""


async def _call(request: Request, path: str, key: str, body: bytes) -> tuple[int, str]:
    """Call ``/v1`` + ``path`` on the front itself; its status and answer, pretty printed."""
    app = request.scope.get("app")
    if app is None:
        return 503, _pretty(b'{"detail": "The API could not be reached from here"}')
    address = client_address(request.scope) or (request.client.host if request.client else "")
    transport = httpx.ASGITransport(app=app, client=(address or "127.0.0.1", 0))
    base = f"{request.url.scheme}://{request.url.netloc}"
    async with httpx.AsyncClient(transport=transport, base_url=base, timeout=TRY_TIMEOUT) as client:
        try:
            answer = await client.post(
                "/v1" + path,
                content=body,
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            )
        except httpx.HTTPError:
            return 503, _pretty(b'{"detail": "The API did not answer"}')
    return answer.status_code, _pretty(answer.content)


def _pretty(raw: bytes) -> str:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode(errors="replace")
    else:
        text = orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode()
    if len(text) > MAX_ANSWER:
        return text[:MAX_ANSWER] + "\n… (cut)"
    return text


def _find(endpoints: list[EndpointView], name: str) -> EndpointView | None:
    wanted = name.lower()
    return next((endpoint for endpoint in endpoints if endpoint.name.lower() == wanted), None)


def _origin(public_url: str, request: Request) -> str:
    """``http(s)://host`` where the platform is reached (its public URL, else this page's)."""
    url = urlsplit(public_url)
    if url.scheme in ("http", "https") and url.netloc:
        return f"{url.scheme}://{url.netloc}"
    return f"{request.url.scheme}://{request.url.netloc}"


# The catalog entry's documents.


def _document(open_api_json: str) -> dict[str, Any]:
    if not open_api_json:
        return {}
    try:
        parsed: Any = orjson.loads(open_api_json)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _operations(api: str, document: dict[str, Any], declared: list[str]) -> dict[str, Any]:
    """Endpoint name, lower-cased -> (path under /v1, its POST operation) of ``document``:
    ``/<api>/<Method>`` names the main service's method, ``/<api>/<Service>/<Method>`` any."""
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return {}
    services = sorted({name.split(".", 1)[0] for name in declared})
    main = main_service(api, services) or api[:1].upper() + api[1:]
    found: dict[str, Any] = {}
    for path, item in paths.items():
        parts = [part for part in str(path).split("/") if part]
        if parts[:1] == ["v1"]:
            parts = parts[1:]
        if not parts or parts[0].lower() != api.lower() or len(parts) not in (2, 3):
            continue
        name = f"{main}.{parts[1]}" if len(parts) == 2 else f"{parts[1]}.{parts[2]}"
        operation = item.get("post") if isinstance(item, dict) else None
        found.setdefault(
            name.lower(), ("/" + "/".join(parts), operation if isinstance(operation, dict) else {})
        )
    return found


def _paths(document: dict[str, Any]) -> list[dict[str, str]]:
    """The document's operations, readable: method, path, summary."""
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return []
    servers = document.get("servers")
    prefix = ""
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        prefix = str(servers[0].get("url", "")).rstrip("/")
    rows = []
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            rows.append(
                {
                    "method": str(method).upper(),
                    "path": prefix + str(path),
                    "summary": _text_of(operation),
                    "stream": str(operation.get("x-stream", "")),
                }
            )
    return rows


def _text_of(operation: dict[str, Any]) -> str:
    """The operation's description, else its summary unless that only repeats its name."""
    text = str(operation.get("description") or operation.get("summary") or "").strip()
    name = str(operation.get("operationId", ""))
    return "" if text in (name, name.rpartition(".")[2]) else text


def _examples(examples_json: str) -> dict[str, list[Example]]:
    """Key, lower-cased -> its examples: ``{"call": [{"title", "request", "response"}]}``."""
    document = _document(examples_json)
    found: dict[str, list[Example]] = {}
    for key, entries in document.items():
        if not isinstance(entries, list):
            continue
        examples = [
            Example(
                title=str(entry.get("title", "")),
                request=_indented(entry.get("request", {})),
                response=_indented(entry.get("response", {})),
            )
            for entry in entries
            if isinstance(entry, dict)
        ]
        found.setdefault(str(key).lower(), examples)
    return found


def _indented(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return "{}"


def endpoints_of(
    api: str,
    *,
    shown: list[str],
    prices: dict[str, int],
    quotas: dict[str, int],
    document: dict[str, Any],
    examples: dict[str, list[Example]],
) -> list[EndpointView]:
    """The endpoints of ``api``: those the summary shows and every priced one, sorted by
    name, with their path, price, quota, stream kind and examples. Examples are keyed by the
    method (``call``) or the endpoint's full name (``Helloworld.Call``), in any case."""
    names: dict[str, str] = {}
    for name in [*shown, *prices]:
        names.setdefault(name.lower(), name)
    operations = _operations(api, document, list(names.values()))
    lower_prices = {key.lower(): value for key, value in prices.items()}
    lower_quotas = {key.lower(): value for key, value in quotas.items()}
    views = []
    for lower, name in sorted(names.items()):
        service, _, method = name.partition(".")
        path, operation = operations.get(lower, (f"/{api}/{service}/{method}", {}))
        views.append(
            EndpointView(
                name=name,
                path=path,
                price=int(lower_prices.get(lower, 0)),
                quota=int(lower_quotas.get(lower, 0)),
                stream=str(operation.get("x-stream", "")),
                summary=_text_of(operation),
                examples=examples.get(lower) or examples.get(method.lower()) or [],
            )
        )
    return views


def icon_of(icon: str) -> str:
    """``icon`` when the page may show it: a ``data:image`` URL (the console's policy
    loads no image from another site)."""
    return icon if icon.startswith("data:image/") else ""
