"""The usage page: calls made with a person's key show up on the chart's data, in the table
with the same numbers and in this month's totals with the free calls left; another
customer's usage never does, and asking for it is refused; strangers are sent to sign in;
the page runs no inline script."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

import m3o.console
from console.site import Person, Site, Text, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

DAY = 24 * 3600
DATA = re.compile(r'<script type="application/json" id="usage-data">(.*?)</script>', re.S)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)
STATIC = Path(m3o.console.__file__).parent / "static"


async def _key(site: Site, person: Person) -> str:
    made = await site.call(
        "/v1/api/keys/generate", {"scopes": ["helloworld"], "description": "usage"}, person.token
    )
    return str(made["api_key"])


async def _hello(site: Site, key: str, times: int) -> None:
    for n in range(times):
        answer = await site.api.post(
            "/v1/helloworld/call",
            json={"name": f"n{n}"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text


def _chart(html: str) -> dict[str, Any]:
    found = DATA.search(html)
    assert found, "no #usage-data block"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _between(html: str, start: str, end: str) -> str:
    return html[html.index(start) : html.index(end, html.index(start))]


async def test_calls_show_on_the_chart_the_table_and_the_months_totals(
    site: Site,
) -> None:
    person = await site.person("usage-chart@example.com")
    browser = site.browser(person.token)
    # An operator gives Helloworld.Call a free quota of its own.
    admin = await site.admin_token()
    entry = await site.call("/publicapi/get", {"name": "helloworld"}, admin)
    quotas = {**entry["api"].get("quotas", {}), "Helloworld.Call": 50}
    await site.call(
        "/publicapi/update", {"api": {"id": entry["api"]["id"], "quotas": quotas}}, admin
    )

    await _hello(site, await _key(site, person), 3)

    async def counted() -> str:
        page = await browser.get("/console/usage")
        assert page.status_code == 200, page.text
        found = DATA.search(page.text)
        if not found or '"counts"' not in found.group(1):
            return ""
        series = {one["name"]: one["counts"] for one in json.loads(found.group(1))["series"]}
        shown = "Helloworld.Call 3 50 47" in Text.of(page.text)
        return page.text if series.get("helloworld", [0])[-1] == 3 and shown else ""

    html = await until(counted, "the three calls on the usage page")

    # The chart's data: 30 consecutive UTC days ending today, the calls on today.
    data = _chart(html)
    today = int(time.time()) // DAY * DAY
    assert len(data["days"]) == 30
    assert data["days"][-1] == today
    assert [b - a for a, b in zip(data["days"], data["days"][1:], strict=False)] == [DAY] * 29
    assert data["series"] == [{"name": "helloworld", "counts": [0] * 29 + [3]}]
    assert '<div id="usage-chart"' in html

    # The table has the same numbers: one row per API, its total, then a cell per day.
    table = Text.of(_between(html, '<table class="usage-daily"', "</table>"))
    assert "helloworld 3 " + " ".join(["0"] * 29 + ["3"]) in table
    assert time.strftime("%m-%d", time.gmtime(today)) in table

    # This month and the free calls left, as the platform API reports them.
    text = Text.of(html)
    read = await site.call("/usage/read", {}, person.token)
    left = int(read.get("quota_remaining", 0))
    assert left > 0
    assert f"Free calls left {left:,}" in text
    assert "Calls this month 3" in text
    assert "Helloworld.Call 3 50 47" in text  # calls, its own quota, left of it
    assert "No calls yet" not in text

    # The only inline script is the JSON data; usage.js evaluates no strings.
    for attributes, body in SCRIPT.findall(html):
        assert "src=" in attributes or (
            'type="application/json"' in attributes and 'id="usage-data"' in attributes
        ), (attributes, body)
    assert html.count('type="application/json"') == 1
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html
    assert "/static/vendor/uplot/uPlot.min.css" in html
    script = (STATIC / "usage.js").read_text()
    assert "eval" not in script and "Function(" not in script and "innerHTML" not in script


async def test_another_customers_usage_never_shows_and_naming_it_is_refused(site: Site) -> None:
    stranger = site.browser()
    sent = await stranger.get("/console/usage")
    assert sent.status_code == 303
    assert sent.headers["location"].startswith("/console/login?next=%2Fconsole%2Fusage")

    caller = await site.person("usage-caller@example.com")
    quiet = await site.person("usage-quiet@example.com")
    await _hello(site, await _key(site, caller), 5)
    callers_browser = site.browser(caller.token)

    async def shown() -> bool:
        page = await callers_browser.get("/console/usage")
        return "Calls this month 5" in Text.of(page.text)

    await until(shown, "the caller's five calls")

    browser = site.browser(quiet.token)
    page = await browser.get("/console/usage")
    assert page.status_code == 200
    text = Text.of(page.text)
    assert "No calls yet" in text
    assert 'href="/console/keys"' in page.text
    assert "usage-data" not in page.text and "helloworld" not in text
    assert caller.email not in text and caller.id not in page.text

    # Naming the other customer as the project is refused beside the choice, no numbers.
    refused = await browser.get("/console/usage", params={"project": caller.id})
    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    assert "your own projects" in Text.of(refused.text)
    assert "usage-data" not in refused.text and "helloworld" not in Text.of(refused.text)
    assert "Calls this month" not in Text.of(refused.text)

    nonsense = await browser.get("/console/usage", params={"project": "x" * 500})
    assert nonsense.status_code == 400
    assert 'role="alert"' in nonsense.text

    # Naming oneself is one's own page.
    own = await browser.get("/console/usage", params={"project": quiet.id})
    assert own.status_code == 200 and "No calls yet" in Text.of(own.text)
