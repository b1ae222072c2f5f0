"""The catalog pages: browsing, searching and filtering the APIs, an API's page with its
endpoints, prices, free quotas, examples and OpenAPI paths, and trying an endpoint with a
key through the public API."""

from __future__ import annotations

import re

import orjson
import pytest

from console.site import Browser, Site, Text, until
from m3o.services.helloworld import catalog as helloworld

pytestmark = pytest.mark.asyncio(loop_scope="module")

HELLOWORLD = "/console/apis/helloworld"
TRY = HELLOWORLD + "/try"


def _element(html: str, element_id: str) -> str:
    """The text inside the element with ``element_id`` (no nested elements)."""
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found, f"no #{element_id} in the page"
    return Text.of(found.group(1))


def _answer(html: str) -> tuple[int, dict[str, object]]:
    """The try form's HTTP status and JSON answer, as the page shows them."""
    found = re.search(r'<pre id="try-answer">([^<]*)</pre>', html)
    assert found, "no answer on the page"
    raw = found.group(1).replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&")
    answer = orjson.loads(raw)
    assert isinstance(answer, dict)
    return int(_element(html, "try-status")), answer


async def _key(site: Site, token: str, description: str) -> tuple[str, str]:
    made = await site.call(
        "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": description}, token
    )
    return made["api_key"], made["api_key_id"]


async def test_the_catalog_lists_searches_and_filters_apis_without_a_sign_in(
    site: Site,
) -> None:
    browser = site.browser()
    page = await browser.get("/console/apis")
    assert page.status_code == 200
    text = Text.of(page.text)
    assert "Helloworld" in text and "greets whoever calls it" in text and "example" in text
    assert f'href="{HELLOWORLD}"' in page.text
    assert 'src="data:image/svg+xml;base64,' in page.text  # the icon
    assert "<label" in page.text and 'for="field-q"' in page.text

    found = await browser.get("/console/apis", params={"q": "hello"})
    assert found.status_code == 200
    assert "1 API matches" in Text.of(found.text) and "Helloworld" in Text.of(found.text)
    missing = await browser.get("/console/apis", params={"q": "no-such-api-anywhere"})
    assert "No API matches" in Text.of(missing.text)
    assert f'href="{HELLOWORLD}"' not in missing.text

    in_category = await browser.get("/console/apis", params={"category": "example"})
    assert f'href="{HELLOWORLD}"' in in_category.text
    assert '<option value="example" selected>' in in_category.text
    elsewhere = await browser.get("/console/apis", params={"category": "weather"})
    assert f'href="{HELLOWORLD}"' not in elsewhere.text
    # A search term that matches inside another category finds nothing.
    both = await browser.get("/console/apis", params={"q": "hello", "category": "weather"})
    assert "No API matches" in Text.of(both.text)


WEATHER = {
    "name": "weather",
    "display_name": "Weather <b>now</b>",
    "category": "weather",
    "icon": "https://icons.example.com/weather.png",
    "description": (
        "# Weather\n\nThe weather <script>alert(1)</script> anywhere.\n\n"
        '```json\n{"location": "London"}\n```\n\n'
        "[Docs](https://docs.example.com/weather), [not this](javascript:alert(1)), "
        "![a tracker](https://tracker.example.com/pixel.png)\n"
    ),
    "upstream": {"address": "http://127.0.0.1:9", "protocol": "http"},
    "pricing": {"Weather.Now": 2500},
    "quotas": {"Weather.Now": 50},
    "examples_json": orjson.dumps(
        {"now": [{"title": "In London", "request": {"location": "London"}, "response": {}}]}
    ).decode(),
}


async def test_a_second_api_is_filtered_apart_and_shown_safely(site: Site) -> None:
    await site.call("/publicapi/publish", {"api": WEATHER}, await site.admin_token())
    browser = site.browser()

    async def listed() -> str:
        page = await browser.get("/console/apis", params={"category": "weather"})
        return page.text if 'href="/console/apis/weather"' in page.text else ""

    weather_only = await until(listed, "weather in the catalog")
    assert f'href="{HELLOWORLD}"' not in weather_only
    assert "Weather &lt;b&gt;now&lt;/b&gt;" in weather_only
    assert "<script>" not in weather_only and "icons.example.com" not in weather_only
    every = await browser.get("/console/apis")
    assert f'href="{HELLOWORLD}"' in every.text and 'href="/console/apis/weather"' in every.text

    page = await browser.get("/console/apis/weather")
    assert page.status_code == 200
    text = Text.of(page.text)
    assert "The weather <script>alert(1)</script> anywhere." in text  # shown, not run
    assert "<script>alert" not in page.text
    assert '<code class="language-json">{&quot;location&quot;: &quot;London&quot;}' in page.text
    # The description's heading sits under the page's own h1 and h2; links to other sites
    # carry rel=nofollow, a javascript: link is no link, and no image is loaded.
    assert "<h3>Weather</h3>" in page.text
    assert (
        '<a href="https://docs.example.com/weather" rel="nofollow noopener">Docs</a>' in page.text
    )
    assert 'href="javascript:' not in page.text
    description = page.text.split('class="api-description"')[1].split("</div>")[0]
    assert "<img" not in description  # markdown's image is at most a link, never loaded
    assert "Weather.Now POST /v1/weather/Weather/Now $0.0025 50" in text
    assert "In London" in text
    assert "publishes no OpenAPI document" in text
    assert (await browser.get("/console/apis/weather/openapi.json")).status_code == 404


async def test_an_api_page_shows_endpoints_prices_quotas_examples_and_openapi(
    site: Site,
) -> None:
    browser = site.browser()
    page = await browser.get(HELLOWORLD)
    assert page.status_code == 200
    assert page.text.count("<h1") == 1
    text = Text.of(page.text)
    assert "Helloworld greets whoever calls it" in text
    assert "<code>Call</code> returns one greeting" in page.text  # markdown code, escaped
    # Call is free; Stream costs 10 units ($0.00001) after 100 free calls a month.
    assert "Helloworld.Call POST /v1/helloworld/Call free — not needed: free" in text
    assert (
        f"Helloworld.Stream streaming POST /v1/helloworld/Stream $0.00001 "
        f"{helloworld.STREAM_FREE_CALLS}" in text
    )
    # The examples, pretty printed, and the streaming endpoint's websocket.
    assert "Call helloworld" in text and "Stream greetings" in text
    assert "&#34;name&#34;: &#34;Alice&#34;" in page.text
    assert "&#34;message&#34;: &#34;Hello Alice&#34;" in page.text
    assert re.search(r"served over a websocket at ws://[^ ]+/v1/helloworld/Stream ", text)
    assert "cannot be tried from the form" in text
    # The try form: only the endpoint that can be tried, pre-filled with its example.
    assert '<option value="Helloworld.Call" selected>' in page.text
    assert '<option value="Helloworld.Stream"' not in page.text
    assert re.search(r'<textarea id="field-request"[^>]*>\{\s*&#34;name&#34;', page.text)
    for label in ("Endpoint", "API key", "Request"):
        assert f">{label}</label>" in page.text
    assert '<script src="/console/static/catalog.js" defer></script>' in page.text
    assert "<script>" not in page.text and "style=" not in page.text
    # The OpenAPI document: its paths on the page, the document itself a link away.
    assert "POST /v1/helloworld/Call" in text and "/v1/helloworld/Stream websocket" in text
    document = await browser.get(HELLOWORLD + "/openapi.json")
    assert document.status_code == 200
    assert document.headers["content-type"].startswith("application/json")
    assert "/helloworld/Call" in document.json()["paths"]

    assert (await browser.get("/console/static/catalog.js")).status_code == 200
    unknown = await browser.get("/console/apis/no-such-api")
    assert unknown.status_code == 404
    assert 'role="alert"' in unknown.text


async def test_trying_an_endpoint_with_a_key_calls_it_and_shows_the_answer(
    site: Site,
) -> None:
    person = await site.person("try@example.com", funds=1_000_000)
    key, key_id = await _key(site, person.token, "console try")
    browser = site.browser()  # no sign-in needed, only the key

    answered = await browser.submit(
        TRY,
        {"endpoint": "Helloworld.Call", "key": key, "request": '{"name": "Ada"}'},
        page=HELLOWORLD,
    )
    assert answered.status_code == 200, answered.text
    assert _answer(answered.text) == (200, {"message": "Hello Ada"})
    # The form is ready for another try: the same endpoint, request and key.
    assert '<option value="Helloworld.Call" selected>' in answered.text
    assert f'value="{key}"' in answered.text
    assert "&#34;Ada&#34;" in answered.text

    # The call went through the platform: it is in the person's usage.
    async def counted() -> bool:
        usage = await site.call("/usage/read", {}, person.token)
        return "helloworld" in orjson.dumps(usage).decode().lower()

    await until(counted, "the tried call in the usage")

    # A wrong key and a revoked key: the API's 401 error, as JSON.
    wrong = await browser.submit(
        TRY, {"endpoint": "Helloworld.Call", "key": "m3o_not_a_key", "request": "{}"}
    )
    status, error = _answer(wrong.text)
    assert status == 401 and error.get("code") == 401
    await site.call("/v1/api/keys/revoke", {"id": key_id}, person.token)

    async def refused() -> bool:
        again = await browser.submit(
            TRY, {"endpoint": "Helloworld.Call", "key": key, "request": "{}"}
        )
        return _answer(again.text)[0] == 401

    await until(refused, "the revoked key refused")


async def test_bad_input_is_refused_on_the_form_before_any_call(site: Site) -> None:
    person = await site.person("bad@example.com", funds=1_000_000)
    key, _ = await _key(site, person.token, "bad input")
    browser = site.browser()
    await browser.get(HELLOWORLD)

    async def refused(fields: dict[str, str], message: str) -> None:
        page = await browser.submit(TRY, fields)
        assert page.status_code == 400, page.text
        assert 'role="alert"' in page.text
        assert message in Text.of(page.text)
        assert 'id="try-status"' not in page.text

    call = "Helloworld.Call"
    await refused({"endpoint": call, "key": key, "request": "{name: Ada"}, "not valid JSON")
    await refused({"endpoint": call, "key": key, "request": "[1, 2]"}, "must be a JSON object")
    await refused({"endpoint": call, "key": "", "request": "{}"}, "Enter an API key")
    await refused({"endpoint": "Nope.Call", "key": key, "request": "{}"}, "Choose one")
    await refused(
        {"endpoint": "Helloworld.Stream", "key": key, "request": "{}"}, "streaming endpoint"
    )
    # What was typed stays in the form to be corrected.
    page = await browser.submit(TRY, {"endpoint": call, "key": key, "request": "{name: Ada"})
    assert "{name: Ada</textarea>" in page.text

    # The try form of an API that does not exist is a 404, not a call.
    missing = await browser.submit(
        "/console/apis/no-such-api/try", {"endpoint": call, "key": key, "request": "{}"}
    )
    assert missing.status_code == 404

    # Without the CSRF token of this browser: refused, nothing called.
    forged = await browser.client.post(
        TRY, data={"endpoint": call, "key": key, "request": "{}", "csrf_token": "x" * 43}
    )
    assert forged.status_code == 403
    assert 'id="try-status"' not in forged.text
    usage = await site.call("/usage/read", {}, person.token)
    assert "hello" not in orjson.dumps(usage).decode().lower()


async def test_one_persons_key_never_reaches_another_persons_page(site: Site) -> None:
    ada = await site.person("ada@example.com", funds=1_000_000)
    bob = await site.person("bob@example.com", funds=1_000_000)
    ada_key, _ = await _key(site, ada.token, "ada's")
    ada_browser = site.browser(ada.token)
    bob_browser: Browser = site.browser(bob.token)

    tried = await ada_browser.submit(
        TRY,
        {"endpoint": "Helloworld.Call", "key": ada_key, "request": '{"name": "Ada"}'},
        page=HELLOWORLD,
    )
    assert _answer(tried.text) == (200, {"message": "Hello Ada"})
    assert ada.email in Text.of(tried.text)
    for path in ("/console/apis", HELLOWORLD):
        page = await bob_browser.get(path)
        assert page.status_code == 200
        assert ada_key not in page.text and ada.email not in page.text
        assert "Hello Ada" not in page.text
    # Bob's form is a page of his own: empty key, the example request.
    assert (
        'id="field-key" name="key" type="password" value=""'
        in (await bob_browser.get(HELLOWORLD)).text
    )
    # Ada's form posted from Bob's browser (her CSRF token, not his) is refused.
    forged = await bob_browser.client.post(
        TRY,
        data={
            "endpoint": "Helloworld.Call",
            "key": ada_key,
            "request": "{}",
            "csrf_token": ada_browser.csrf,
        },
    )
    assert forged.status_code == 403
