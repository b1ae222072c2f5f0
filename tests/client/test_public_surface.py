"""The package's public names are pinned: changing them is a decision, not an accident."""

from __future__ import annotations

import m3o.client


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
