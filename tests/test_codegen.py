"""Method names of generated clients: protobuf's CamelCase to Python's snake_case."""

from __future__ import annotations

import pytest

from m3o.codegen import _snake
from m3o.services.v1.proto.client import V1Client


@pytest.mark.parametrize(
    ("method", "python"),
    [
        ("Call", "call"),
        ("ReadMonthlyTotal", "read_monthly_total"),
        ("GoogleURL", "google_url"),
        ("ListAPIs", "list_apis"),
        ("ListAPIRanks", "list_api_ranks"),
        ("GetAPIsNow", "get_apis_now"),
        ("HTTPServer", "http_server"),
    ],
)
def test_method_names(method: str, python: str) -> None:
    assert _snake(method) == python


def test_the_generated_client_uses_the_plural_acronym_name() -> None:
    assert hasattr(V1Client, "list_apis")
