"""The package's public names are pinned: changing them is a decision, not an accident.
The clients (with httpx and websockets) are loaded when first asked for."""

from __future__ import annotations

import pytest

import m3o.client
from support.fresh_python import lines_printed


def test_public_names() -> None:
    assert sorted(m3o.client.__all__) == [
        "APIError",
        "BadRequestError",
        "Client",
        "ClientError",
        "ConflictError",
        "DEFAULT_ADDRESS",
        "DEFAULT_TIMEOUT",
        "ForbiddenError",
        "InternalServerError",
        "InvalidResponse",
        "NetworkError",
        "NotFoundError",
        "RequestTimeout",
        "ServiceUnavailableError",
        "Stream",
        "SyncClient",
        "SyncStream",
        "TooManyRequestsError",
        "UnauthorizedError",
    ]


def test_every_error_is_a_client_error() -> None:
    for name in m3o.client.__all__:
        value = getattr(m3o.client, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, m3o.client.ClientError), name


def test_every_public_name_is_there() -> None:
    names: dict[str, object] = {}
    exec("from m3o.client import *", names)  # what `import *` gives a user
    assert set(m3o.client.__all__) <= names.keys()
    assert m3o.client.SyncClient.__name__ == "SyncClient"
    assert m3o.client.Stream.__module__ == "m3o.client._stream"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = m3o.client.Nope  # type: ignore[attr-defined]


def test_the_errors_and_defaults_come_without_the_http_and_websocket_libraries() -> None:
    code = (
        "import sys\n"
        "from m3o.client import DEFAULT_ADDRESS, APIError, NetworkError\n"
        "print([m for m in ('httpx', 'websockets') if m in sys.modules])\n"
        "from m3o.client import Client\n"
        "print([m for m in ('httpx', 'websockets') if m in sys.modules])\n"
    )
    assert lines_printed(code) == ["[]", "['httpx', 'websockets']"]
