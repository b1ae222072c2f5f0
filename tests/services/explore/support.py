"""Helpers of the explore tests: catalog entries as publicapi lists them, the world."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from m3o.runtime.auth import CallContext
from m3o.runtime.counters import CounterStore
from m3o.services.explore.handler import Explore
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.fakes import FakePublicapiClient

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)


def call(method: str) -> CallContext:
    """An anonymous call: every explore endpoint is public."""
    return CallContext(service="explore", method=method)


def entry(
    name: str,
    *,
    endpoints: tuple[str, ...] = (),
    paths: tuple[str, ...] | None = None,
    category: str = "",
    description: str = "",
    display_name: str = "",
    pricing: dict[str, int] | None = None,
    quotas: dict[str, int] | None = None,
    streaming: tuple[str, ...] = (),
) -> publicapi_pb.PublicAPI:
    """An entry as publicapi.List returns it to a service: ``endpoints`` declared by its
    descriptors, its OpenAPI document documenting ``paths`` (every declared endpoint at its
    /v1 path when None)."""
    if paths is None:
        paths = tuple(f"/{name}/{e.split('.', 1)[1]}" for e in endpoints)
    document = orjson.dumps({"openapi": "3.1.0", "paths": {p: {} for p in paths}}).decode()
    return publicapi_pb.PublicAPI(
        id=f"id-{name}",
        name=name,
        display_name=display_name or name,
        description=description,
        category=category,
        icon=f"https://icons.example/{name}.png",
        open_api_json=document,
        examples_json='{"call": []}',
        pricing=pricing or {},
        quotas=quotas or {},
        owner_id="admin-1",
        upstream=publicapi_pb.Upstream(address=f"{name}:9000", protocol="grpc"),
        descriptors=b"\n\x02\n\x00",
        endpoints=[
            publicapi_pb.Endpoint(name=e, server_streaming=e in streaming) for e in endpoints
        ],
    )


@dataclass
class World:
    handler: Explore
    publicapi: FakePublicapiClient
    counters: CounterStore

    def catalog(self, *entries: publicapi_pb.PublicAPI) -> None:
        self.publicapi.list.returns(publicapi_pb.ListResponse(apis=list(entries)))
