"""Error kinds become their exact JSON document and status."""

from __future__ import annotations

import orjson

from m3o.gateway.http_errors import error_response
from m3o.runtime.errors import Forbidden, TooManyRequests


class SlowDown(TooManyRequests):
    retry_after = 30.4


def test_error_response_is_the_error_document_with_its_status() -> None:
    response = error_response(Forbidden("v1.blocked", "Request blocked. Insufficient credit"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert orjson.loads(response.body) == {
        "id": "v1.blocked",
        "code": 403,
        "detail": "Request blocked. Insufficient credit",
        "status": "Forbidden",
    }


def test_too_many_requests_retry_after_comes_from_the_error_when_it_says() -> None:
    assert error_response(SlowDown("v1", "Too Many Requests")).headers["retry-after"] == "30"
    assert error_response(TooManyRequests("v1", "Too Many Requests")).headers["retry-after"] == "1"


def test_extra_headers_are_kept_and_win() -> None:
    response = error_response(
        TooManyRequests("v1", "Too Many Requests"),
        {"Retry-After": "7", "RateLimit-Limit": "1000"},
    )
    assert response.headers["retry-after"] == "7"
    assert response.headers["ratelimit-limit"] == "1000"
