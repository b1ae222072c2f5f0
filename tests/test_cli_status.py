"""`m3o status`: the status page as a table, exit 1 unless every part is OK; answers that
are not a status page and unreachable platforms are one line on stderr, exit 1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from m3o.cli import app
from support.http_fakes import served
from support.ports import free_port


class Page:
    """A fake platform front whose ``/status/call`` answers what the test set."""

    def __init__(self) -> None:
        self.status_code = 200
        self.body: object = {}
        self.methods: list[str] = []

    def app(self) -> Starlette:
        async def call(request: Request) -> Response:
            self.methods.append(request.method)
            return JSONResponse(self.body, status_code=self.status_code)

        return Starlette(routes=[Route("/status/call", call, methods=["GET", "POST"])])


@pytest.fixture
def page() -> Iterator[tuple[Page, str]]:
    fake = Page()
    with served(fake.app()) as url:
        yield fake, url


def _status(url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["status", "--address", url])
    return result.exit_code, result.stdout, result.stderr


def test_all_ok_prints_the_table_and_exits_0(page: tuple[Page, str]) -> None:
    fake, url = page
    fake.body = {"events": "OK", "auth": "OK", "database": "OK"}

    code, out, _ = _status(url)

    assert code == 0
    assert out.splitlines() == [
        "SERVICE   STATE",
        "auth      OK",
        "database  OK",
        "events    OK",
        "all 3 OK",
    ]
    assert fake.methods == ["GET"]


def test_a_part_not_healthy_is_shown_and_exits_1(page: tuple[Page, str]) -> None:
    fake, url = page
    fake.status_code = 500
    fake.body = {"auth": "OK", "customers": "NOT_HEALTHY", "counters": "NOT_HEALTHY"}

    code, out, _ = _status(url)

    assert code == 1
    assert out.splitlines() == [
        "SERVICE    STATE",
        "auth       OK",
        "counters   NOT_HEALTHY",
        "customers  NOT_HEALTHY",
        "2 of 3 not OK",
    ]


@pytest.mark.parametrize(
    ("status_code", "body"),
    [
        (404, {"id": "api", "code": 404, "detail": "Not found", "status": "Not Found"}),
        (200, []),
        (200, {}),
        (500, {"status": {"nested": True}}),
    ],
)
def test_an_answer_that_is_not_a_status_page_is_one_line_and_exit_1(
    page: tuple[Page, str], status_code: int, body: object
) -> None:
    fake, url = page
    fake.status_code = status_code
    fake.body = body

    code, out, err = _status(url)

    assert code == 1
    assert out == ""
    assert err.strip().startswith(f"{url}/status/call answered {status_code}")
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_platform_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code, out, err = _status(url)

    assert code == 1
    assert out == ""
    assert err.strip().startswith(f"cannot reach {url}/status/call")


def test_a_malformed_address_is_refused() -> None:
    code, _, err = _status("127.0.0.1:8080")

    assert code == 1
    assert "http:// or https://" in err
