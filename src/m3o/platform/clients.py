"""Typed clients of other services, calling with a given account's token."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from m3o.runtime.rpc import Client, TokenSource, Transport

__all__ = ["ClientFactory"]

C = TypeVar("C", bound=Client)


class ClientFactory:
    """Implements ``m3o.runtime.service.Clients`` over one transport and one token source."""

    def __init__(self, transport: Transport, credentials: TokenSource | None) -> None:
        self._transport = transport
        self._credentials = credentials

    def get(self, client_type: Callable[[Transport, TokenSource | None], C]) -> C:
        return client_type(self._transport, self._credentials)
