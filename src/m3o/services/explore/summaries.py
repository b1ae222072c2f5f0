"""What explore shows of a catalog entry: its summary, public entry and pricing.

A summary's endpoints are those the upstream really has (the entry's ``endpoints``, which
publicapi derives from the descriptors) and the OpenAPI document documents. Document paths
are read as the gateway serves them, ``/<api>/<Method>`` for the API's main service and
``/<api>/<Service>/<Method>`` (an optional ``/v1`` first); the main service is the one
named like the API, or the only one (:func:`m3o.runtime.rpc.endpoints.main_service`).
An API whose descriptors are unknown (an http upstream) shows what its document
documents, a one-part path naming ``<Api>.<Method>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from m3o.runtime.rpc.endpoints import main_service
from m3o.services.explore.proto import explore_pb2 as pb
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb

__all__ = ["Listing", "listing_of"]


@dataclass(frozen=True, slots=True)
class Listing:
    """One API as explore shows it."""

    summary: pb.ExploreAPI
    api: pb.PublicAPI
    pricing: pb.PricingItem
    search_names: tuple[str, ...]
    """Lower-cased name and display name, for search."""


def _paths(open_api_json: str) -> list[str]:
    if not open_api_json:
        return []
    try:
        document: Any = orjson.loads(open_api_json)
    except orjson.JSONDecodeError:
        return []
    paths = document.get("paths") if isinstance(document, dict) else None
    return [str(path) for path in paths] if isinstance(paths, dict) else []


def _services(declared: Iterable[str]) -> list[str]:
    return sorted({name.split(".", 1)[0] for name in declared})


def _documented(api: str, open_api_json: str, declared: list[str]) -> list[str]:
    """Endpoint names (``Service.Method``) the document's paths name, in path order."""
    main = main_service(api, _services(declared)) or api.capitalize()
    found: list[str] = []
    for path in _paths(open_api_json):
        parts = [part for part in path.split("/") if part]
        if parts[:1] == ["v1"]:
            parts = parts[1:]
        if not parts or parts[0].lower() != api.lower():
            continue
        if len(parts) == 2:
            found.append(f"{main}.{parts[1]}")
        elif len(parts) == 3:
            found.append(f"{parts[1]}.{parts[2]}")
    return found


def _endpoints(entry: publicapi_pb.PublicAPI) -> tuple[list[str], list[str]]:
    """(the summary's endpoints, every endpoint of the API) of ``entry``."""
    declared = [endpoint.name for endpoint in entry.endpoints]
    documented = _documented(entry.name, entry.open_api_json, declared)
    if not declared:
        unique = sorted(dict.fromkeys(documented))
        return unique, unique
    wanted = {name.lower() for name in documented}
    shown = sorted(name for name in declared if name.lower() in wanted)
    return shown, sorted(declared)


def _filled(prices: Mapping[str, int], endpoints: list[str]) -> dict[str, int]:
    """``prices`` plus every endpoint it lacks (keys ignore case) at 0."""
    filled = dict(prices)
    present = {key.lower() for key in prices}
    for endpoint in endpoints:
        if endpoint.lower() not in present:
            filled[endpoint] = 0
    return filled


def listing_of(entry: publicapi_pb.PublicAPI) -> Listing:
    shown, every = _endpoints(entry)
    display_name = entry.display_name or entry.name
    summary = pb.ExploreAPI(
        name=entry.name,
        display_name=display_name,
        description=entry.description,
        category=entry.category,
        icon=entry.icon,
        endpoints=[pb.Endpoint(name=name) for name in shown],
    )
    api = pb.PublicAPI(
        id=entry.id,
        name=entry.name,
        display_name=display_name,
        description=entry.description,
        category=entry.category,
        icon=entry.icon,
        open_api_json=entry.open_api_json,
        examples_json=entry.examples_json,
        postman_json=entry.postman_json,
        pricing=dict(entry.pricing),
        quotas=dict(entry.quotas),
        owner_id=entry.owner_id,
    )
    pricing = pb.PricingItem(
        name=entry.name,
        id=entry.id,
        display_name=display_name,
        icon=entry.icon,
        pricing=_filled(entry.pricing, every),
        quotas=_filled(entry.quotas, every),
    )
    return Listing(summary, api, pricing, (entry.name.lower(), display_name.lower()))
