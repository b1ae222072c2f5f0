"""The published APIs: the names a key's scopes may hold.

Asked of the publicapi service (``List``) with this service's own account each time it is
needed: key generation and ``ListAPIs`` are rare, and a just-published API must be usable
at once.
"""

from __future__ import annotations

from typing import Protocol

from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.client import PublicapiService

__all__ = ["ApiNames", "PublishedApis"]


class ApiNames(Protocol):
    async def names(self) -> list[str]:
        """The lower-case names of the published APIs, sorted. Raises M3OError."""
        ...


class PublishedApis:
    """:class:`ApiNames` from the publicapi catalog."""

    def __init__(self, publicapi: PublicapiService) -> None:
        self._publicapi = publicapi

    async def names(self) -> list[str]:
        listed = await self._publicapi.list(publicapi_pb.ListRequest())
        return sorted({api.name.lower() for api in listed.apis if api.name})
