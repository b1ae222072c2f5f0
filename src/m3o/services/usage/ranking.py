"""The ranking arithmetic: APIs by calls, popularity from 0 to 10, top users.

Pure functions over per-customer, per-API totals; :mod:`m3o.services.usage.ranks` feeds
them from the history and names the users.

Popularity compares an API's count with a reference: the largest count whose z-score
(population standard deviation) is at most 1.5, so one outlier does not flatten every other
API to 0; the top count when no count qualifies (all counts equal). ``popularity =
min(10, round(count / reference x 10))``, halves rounded up. The z-score test and the
rounding are done in integers, exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_POPULARITY",
    "TOP_USERS",
    "Counted",
    "Ranking",
    "popularity",
    "popularity_reference",
    "rank",
    "top",
]

MAX_POPULARITY = 10
TOP_USERS = 10
_Z_LIMIT = (3, 2)
"""1.5 as a fraction: a count qualifies as reference when its z-score is at most this."""


@dataclass(frozen=True, slots=True)
class Counted:
    """A name (an API, a customer id) with its count, as ranked."""

    name: str
    count: int


@dataclass(frozen=True, slots=True)
class Ranking:
    """APIs most called first, each with its top users, and the top users overall."""

    apis: list[Counted]
    popularity: dict[str, int]
    top_users: dict[str, list[Counted]]
    global_top_users: list[Counted]


def top(counts: Mapping[str, int], limit: int | None = None) -> list[Counted]:
    """``counts`` largest first, ties by name; the first ``limit`` of them."""
    ordered = sorted((Counted(n, c) for n, c in counts.items()), key=lambda e: (-e.count, e.name))
    return ordered if limit is None else ordered[:limit]


def popularity_reference(counts: Sequence[int]) -> int:
    """The largest of ``counts`` whose z-score is at most 1.5; the largest if none is.

    ``z = (c - mean) / sd <= 1.5``, with ``n`` counts summing to ``s``, is
    ``c <= mean`` or ``4 (n c - s)^2 <= 9 (n sum(c^2) - s^2)``; a zero deviation (every
    count equal) makes no z-score, hence the largest.
    """
    if not counts:
        return 0
    n = len(counts)
    total = sum(counts)
    spread = n * sum(c * c for c in counts) - total * total  # n^2 times the variance
    ordered = sorted(counts, reverse=True)
    if spread == 0:
        return ordered[0]
    numerator, denominator = _Z_LIMIT
    for count in ordered:
        above = n * count - total  # n times the distance above the mean
        if above <= 0 or denominator**2 * above * above <= numerator**2 * spread:
            return count
    return ordered[0]


def popularity(count: int, reference: int) -> int:
    """``min(10, round(count / reference x 10))``, a half rounded up."""
    if reference <= 0:
        return 0
    rounded = (2 * MAX_POPULARITY * count + reference) // (2 * reference)
    return min(MAX_POPULARITY, rounded)


def rank(api_totals: Mapping[str, int], user_totals: Iterable[tuple[str, str, int]]) -> Ranking:
    """Rank APIs by ``api_totals`` (API -> count) and users by ``user_totals``
    (customer, API, count) rows."""
    apis = [entry for entry in top(api_totals) if entry.count > 0]
    reference = popularity_reference([entry.count for entry in apis])
    by_api: dict[str, dict[str, int]] = defaultdict(dict)
    overall: dict[str, int] = defaultdict(int)
    for customer_id, api, count in user_totals:
        if count <= 0:
            continue
        by_api[api][customer_id] = by_api[api].get(customer_id, 0) + count
        overall[customer_id] += count
    return Ranking(
        apis=apis,
        popularity={entry.name: popularity(entry.count, reference) for entry in apis},
        top_users={api: top(users, TOP_USERS) for api, users in by_api.items()},
        global_top_users=top(overall, TOP_USERS),
    )
