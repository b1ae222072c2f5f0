"""Search: matching and ranking listings, and counting the terms people search for.

A term matches case-insensitively as a substring, ranked: the API's name (or display name),
then one of its endpoint names, then its description; within a rank, by name. Categories
match case-insensitively; none given matches every category.

Each non-empty term is counted, lower-cased with its runs of spaces turned into ``-`` (and
unprintable characters dropped), in
the month's counter ``explore:searches:<YYYYMM>:<term>`` (kept 62 days): the popular
searches of a month, without keeping every term ever typed forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from m3o.services.explore.summaries import Listing

__all__ = ["SEARCH_COUNT_TTL", "matching_categories", "rank", "search_key", "search_term_key"]

SEARCH_COUNT_TTL = timedelta(days=62)


def search_term_key(term: str) -> str:
    """How a term is counted: lower-cased, runs of whitespace turned into ``-``, characters
    that cannot be printed (NUL, controls) left out."""
    printable = "".join(ch if ch.isprintable() else " " for ch in term)
    return "-".join(printable.lower().split())


def search_key(term: str, now: datetime) -> str:
    """The counter of ``term`` (as :func:`search_term_key` spells it) in ``now``'s month."""
    return f"explore:searches:{now:%Y%m}:{term}"


def matching_categories(listings: Iterable[Listing], categories: Sequence[str]) -> list[Listing]:
    wanted = {category.strip().lower() for category in categories if category.strip()}
    if not wanted:
        return list(listings)
    return [item for item in listings if item.summary.category.lower() in wanted]


def _rank_of(listing: Listing, term: str) -> int | None:
    if any(term in name for name in listing.search_names):
        return 0
    if any(term in endpoint.name.lower() for endpoint in listing.summary.endpoints):
        return 1
    if term in listing.summary.description.lower():
        return 2
    return None


def rank(listings: Iterable[Listing], term: str) -> list[Listing]:
    """The listings ``term`` matches, best first; every listing for an empty term."""
    wanted = term.strip().lower()
    if not wanted:
        return list(listings)
    ranked: list[tuple[int, str, Listing]] = []
    for listing in listings:
        found = _rank_of(listing, wanted)
        if found is not None:
            ranked.append((found, listing.summary.name, listing))
    return [listing for _, _, listing in sorted(ranked, key=lambda item: item[:2])]
