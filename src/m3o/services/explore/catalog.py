"""The catalog as explore reads it: ``publicapi.List`` (without descriptors: the endpoints
publicapi derives from them are enough), kept for a few seconds.

Explore is public and anonymous, so its answers come from a short-lived copy rather than
one catalog read per request; one read at a time refreshes it. When a refresh fails, the
previous copy keeps serving (a failure is logged); with no copy yet, the error is the
caller's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.services.explore.summaries import Listing, listing_of
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.client import PublicapiService

__all__ = ["CATALOG_TTL", "Catalog"]

CATALOG_TTL = timedelta(seconds=5)
"""How long explore serves one read of the catalog."""

_log = get_logger(__name__)


class Catalog:
    """Every API as explore shows it, sorted by name."""

    def __init__(
        self,
        publicapi: PublicapiService,
        *,
        ttl: timedelta = CATALOG_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publicapi = publicapi
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._listings: list[Listing] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._clock() - self._read_at < self._ttl

    async def listings(self) -> list[Listing]:
        found = self._listings
        if found is not None and self._fresh():
            return found
        async with self._lock:
            found = self._listings
            if found is None or not self._fresh():
                found = await self._read(found)
                self._listings = found
                self._read_at = self._clock()
            return found

    async def _read(self, previous: list[Listing] | None) -> list[Listing]:
        try:
            response = await self._publicapi.list(publicapi_pb.ListRequest(omit_descriptors=True))
        except M3OError as exc:
            if previous is None:
                raise
            _log.warning("explore.catalog_refresh_failed", error=exc.detail)
            return previous
        return sorted(
            (listing_of(entry) for entry in response.apis), key=lambda item: item.summary.name
        )
