"""Calls to outside services: retried on timeouts, failed connections, 429 and 5xx with a
growing backoff; refused at once on any other non-2xx; errors never carry the request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from m3o.runtime.outbound import MAX_DETAIL, OutboundError, Retries, send_with_retries
from support.http_fakes import served
from support.ports import closed_port

SECRET = "xoxb-secret-token"


class Upstream:
    """Answers each request with the next of ``answers`` (status, body, headers), then 200."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str, dict[str, str]]] = []
        self.received: list[bytes] = []
        self.hang = False

    async def endpoint(self, request: Request) -> Response:
        self.received.append(await request.body())
        if self.hang:
            await asyncio.sleep(5)
        if self.answers:
            status, body, headers = self.answers.pop(0)
            return Response(body, status_code=status, headers=headers)
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/post", self.endpoint, methods=["POST"])])


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    fake = Upstream()
    with served(fake.app()) as url:
        yield fake, url


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def _post(
    client: httpx.AsyncClient, url: str, timeout: float = 5.0
) -> Callable[[], Awaitable[httpx.Response]]:
    async def request() -> httpx.Response:
        return await client.post(f"{url}/post", json={"token": SECRET}, timeout=timeout)

    return request


async def test_a_2xx_is_returned_at_once(upstream: tuple[Upstream, str]) -> None:
    fake, url = upstream
    waits = Waits()
    async with httpx.AsyncClient() as client:
        response = await send_with_retries(_post(client, url), service="Slack", sleep=waits)
    assert response.json() == {"ok": True}
    assert len(fake.received) == 1
    assert waits.seconds == []


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_transient_answers_are_retried_with_growing_waits(
    upstream: tuple[Upstream, str], status: int
) -> None:
    fake, url = upstream
    fake.answers = [(status, "busy", {}), (status, "busy", {})]
    waits = Waits()
    retries = Retries(attempts=3, first_delay=timedelta(seconds=1), max_delay=timedelta(seconds=10))
    async with httpx.AsyncClient() as client:
        response = await send_with_retries(
            _post(client, url), service="Slack", retries=retries, sleep=waits
        )
    assert response.status_code == 200
    assert len(fake.received) == 3
    assert 0.5 <= waits.seconds[0] <= 1 < waits.seconds[1] <= 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_refusals_are_not_retried(upstream: tuple[Upstream, str], status: int) -> None:
    fake, url = upstream
    fake.answers = [(status, "no such channel", {})]
    waits = Waits()
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError) as caught:
            await send_with_retries(_post(client, url), service="Slack", sleep=waits)
    assert len(fake.received) == 1
    assert waits.seconds == []
    assert caught.value.transient is False
    assert caught.value.status == status
    assert str(caught.value) == f"Slack answered {status}: no such channel"


async def test_the_last_transient_failure_is_raised_without_the_request(
    upstream: tuple[Upstream, str],
) -> None:
    fake, url = upstream
    fake.answers = [(503, "x" * 1000, {})] * 2
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError) as caught:
            await send_with_retries(
                _post(client, url), service="Mixpanel", retries=Retries(attempts=2), sleep=Waits()
            )
    assert caught.value.transient is True
    assert str(caught.value) == "Mixpanel answered 503: " + "x" * MAX_DETAIL
    assert SECRET not in str(caught.value)


async def test_retry_after_is_honoured_up_to_the_longest_wait(
    upstream: tuple[Upstream, str],
) -> None:
    fake, url = upstream
    fake.answers = [(429, "", {"Retry-After": "3"}), (503, "", {"Retry-After": "3600"})]
    waits = Waits()
    retries = Retries(attempts=3, first_delay=timedelta(seconds=1), max_delay=timedelta(seconds=10))
    async with httpx.AsyncClient() as client:
        await send_with_retries(_post(client, url), service="Slack", retries=retries, sleep=waits)
    assert waits.seconds[0] == 3
    assert 1 <= waits.seconds[1] <= 2  # an hour is longer than the longest wait: backoff


async def test_a_slow_service_times_out_and_is_retried(upstream: tuple[Upstream, str]) -> None:
    fake, url = upstream
    fake.hang = True
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError) as caught:
            await send_with_retries(
                _post(client, url, timeout=0.2),
                service="Discord",
                retries=Retries(attempts=2),
                sleep=Waits(),
            )
    assert str(caught.value) == "Discord did not answer in time"
    assert caught.value.transient is True
    assert len(fake.received) == 2


async def test_an_unreachable_service_is_transient() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with httpx.AsyncClient() as client:
        with pytest.raises(OutboundError) as caught:
            await send_with_retries(
                _post(client, url), service="Mailchimp", retries=Retries(attempts=2), sleep=Waits()
            )
    assert str(caught.value) == "Mailchimp unreachable: ConnectError"
    assert caught.value.transient is True


def test_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        Retries(attempts=0)
