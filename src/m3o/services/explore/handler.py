"""The explore service: the public face of the catalog. Every endpoint is public.

It reads the catalog through the publicapi client (:mod:`m3o.services.explore.catalog`),
never publicapi's tables.
"""

from __future__ import annotations

from m3o.runtime.auth import CallContext
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, NotFound, Unavailable
from m3o.runtime.logging import get_logger
from m3o.services.explore.catalog import Catalog
from m3o.services.explore.proto import explore_pb2 as pb
from m3o.services.explore.searches import (
    SEARCH_COUNT_TTL,
    matching_categories,
    rank,
    search_key,
    search_term_key,
)

__all__ = ["MAX_SEARCH_TERM", "Explore"]

MAX_SEARCH_TERM = 200
"""Longest search term, in characters."""
MAX_CATEGORIES = 100

_log = get_logger(__name__)


class Explore:
    """Implements ``explore.Explore`` (see ``proto/explore.proto``)."""

    def __init__(self, *, catalog: Catalog, counters: CounterStore, clock: Clock = utc_now) -> None:
        self._catalog = catalog
        self._counters = counters
        self._clock = clock

    async def index(self, request: pb.IndexRequest, ctx: CallContext) -> pb.IndexResponse:
        if request.limit < 0:
            raise BadRequest(ctx.endpoint, "limit must not be negative")
        if request.offset < 0:
            raise BadRequest(ctx.endpoint, "offset must not be negative")
        listings = await self._catalog.listings()
        end = len(listings) if request.limit == 0 else request.offset + request.limit
        page = listings[request.offset : end]
        return pb.IndexResponse(apis=[listing.summary for listing in page])

    async def search(self, request: pb.SearchRequest, ctx: CallContext) -> pb.SearchResponse:
        if len(request.search_term) > MAX_SEARCH_TERM:
            raise BadRequest(
                ctx.endpoint, f"search_term is longer than {MAX_SEARCH_TERM} characters"
            )
        if len(request.categories) > MAX_CATEGORIES:
            raise BadRequest(ctx.endpoint, f"at most {MAX_CATEGORIES} categories")
        categories = [*request.categories, request.category]
        await self._count(request.search_term)
        listings = matching_categories(await self._catalog.listings(), categories)
        found = rank(listings, request.search_term)
        return pb.SearchResponse(apis=[listing.summary for listing in found])

    async def _count(self, term: str) -> None:
        key_term = search_term_key(term)
        if not key_term:
            return
        try:
            await self._counters.incr(search_key(key_term, self._clock()), ttl=SEARCH_COUNT_TTL)
        except Unavailable:
            # Counting is for statistics: a search still answers without it.
            _log.warning("explore.search_not_counted")

    async def api(self, request: pb.APIRequest, ctx: CallContext) -> pb.APIResponse:
        name = request.name.strip().lower()
        if not name:
            raise BadRequest(ctx.endpoint, "missing name")
        for listing in await self._catalog.listings():
            if listing.summary.name == name:
                return pb.APIResponse(summary=listing.summary, api=listing.api)
        raise NotFound(ctx.endpoint, "not found")

    async def list_categories(
        self, request: pb.ListCategoriesRequest, ctx: CallContext
    ) -> pb.ListCategoriesResponse:
        listings = await self._catalog.listings()
        categories = {listing.summary.category for listing in listings}
        return pb.ListCategoriesResponse(categories=sorted(c for c in categories if c))

    async def pricing(self, request: pb.PricingRequest, ctx: CallContext) -> pb.PricingResponse:
        listings = await self._catalog.listings()
        return pb.PricingResponse(prices=[listing.pricing for listing in listings])
