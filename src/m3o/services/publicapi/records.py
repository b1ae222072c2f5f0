"""Catalog entries as stored: reading and writing ``publicapi_apis``.

Every function works inside the caller's session, so the caller decides the transaction
(and publishes its event in the same one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from m3o.services.publicapi.descriptors import Endpoint
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.tables import apis

__all__ = ["ApiRecord", "find", "insert_new", "list_all", "remove", "save"]


@dataclass(frozen=True, slots=True)
class ApiRecord:
    """One catalog entry; times are timezone-aware UTC."""

    id: str
    name: str
    created: datetime
    updated: datetime
    upstream_address: str
    upstream_protocol: str
    display_name: str = ""
    description: str = ""
    category: str = ""
    icon: str = ""
    open_api_json: str = ""
    open_api_generated: bool = False
    examples_json: str = ""
    postman_json: str = ""
    pricing: Mapping[str, int] = field(default_factory=dict)
    quotas: Mapping[str, int] = field(default_factory=dict)
    owner_id: str = ""
    descriptors: bytes = b""
    endpoints: tuple[Endpoint, ...] = ()
    """What ``descriptors`` declare, sorted by name."""
    usage_endpoint: str = ""
    """The endpoint reporting a tenant's unit usage; empty for none."""

    def to_proto(self, *, with_upstream: bool) -> pb.PublicAPI:
        """The entry as the API shows it; upstream and descriptors only when asked."""
        found = pb.PublicAPI(
            id=self.id,
            name=self.name,
            display_name=self.display_name or self.name,
            description=self.description,
            category=self.category,
            icon=self.icon,
            open_api_json=self.open_api_json,
            examples_json=self.examples_json,
            postman_json=self.postman_json,
            pricing=dict(self.pricing),
            quotas=dict(self.quotas),
            owner_id=self.owner_id,
            created=int(self.created.timestamp()),
            updated=int(self.updated.timestamp()),
            usage_endpoint=self.usage_endpoint,
            endpoints=[
                pb.Endpoint(
                    name=endpoint.name,
                    server_streaming=endpoint.server_streaming,
                    client_streaming=endpoint.client_streaming,
                )
                for endpoint in self.endpoints
            ],
        )
        if with_upstream:
            found.upstream.address = self.upstream_address
            found.upstream.protocol = self.upstream_protocol
            found.descriptors = self.descriptors
        return found

    def same_content(self, other: ApiRecord) -> bool:
        """Whether ``other`` differs only in its times (an update that changes nothing)."""
        return replace(other, created=self.created, updated=self.updated) == self


def _values(record: ApiRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "display_name": record.display_name,
        "description": record.description,
        "category": record.category,
        "icon": record.icon,
        "open_api_json": record.open_api_json,
        "open_api_generated": record.open_api_generated,
        "examples_json": record.examples_json,
        "postman_json": record.postman_json,
        "pricing": dict(record.pricing),
        "quotas": dict(record.quotas),
        "owner_id": record.owner_id,
        "upstream_address": record.upstream_address,
        "upstream_protocol": record.upstream_protocol,
        "descriptors": record.descriptors,
        "endpoints": [_endpoint_json(endpoint) for endpoint in record.endpoints],
        "usage_endpoint": record.usage_endpoint,
        "created": record.created,
        "updated": record.updated,
    }


def _endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "service": endpoint.service,
        "method": endpoint.method,
        "request_type": endpoint.request_type,
        "response_type": endpoint.response_type,
        "client_streaming": endpoint.client_streaming,
        "server_streaming": endpoint.server_streaming,
    }


def _endpoint(data: Mapping[str, Any]) -> Endpoint:
    return Endpoint(
        name=str(data["name"]),
        service=str(data["service"]),
        method=str(data["method"]),
        request_type=str(data["request_type"]),
        response_type=str(data["response_type"]),
        client_streaming=bool(data["client_streaming"]),
        server_streaming=bool(data["server_streaming"]),
    )


def _record(row: Row[Any]) -> ApiRecord:
    return ApiRecord(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        description=row.description,
        category=row.category,
        icon=row.icon,
        open_api_json=row.open_api_json,
        open_api_generated=bool(row.open_api_generated),
        examples_json=row.examples_json,
        postman_json=row.postman_json,
        pricing={str(k): int(v) for k, v in row.pricing.items()},
        quotas={str(k): int(v) for k, v in row.quotas.items()},
        owner_id=row.owner_id,
        upstream_address=row.upstream_address,
        upstream_protocol=row.upstream_protocol,
        descriptors=bytes(row.descriptors),
        endpoints=tuple(_endpoint(item) for item in row.endpoints),
        usage_endpoint=row.usage_endpoint,
        created=row.created,
        updated=row.updated,
    )


async def find(
    session: AsyncSession, *, api_id: str = "", name: str = "", lock: bool = False
) -> ApiRecord | None:
    """The entry with ``api_id`` (when given), else the one named ``name``."""
    query = select(apis)
    query = query.where(apis.c.id == api_id) if api_id else query.where(apis.c.name == name)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else _record(row)


async def list_all(session: AsyncSession) -> list[ApiRecord]:
    """Every entry, sorted by name."""
    rows = await session.execute(select(apis).order_by(apis.c.name))
    return [_record(row) for row in rows]


async def insert_new(session: AsyncSession, record: ApiRecord) -> None:
    """Insert ``record``; IntegrityError when its name (or id) is taken."""
    await session.execute(insert(apis).values(**_values(record)))


async def save(session: AsyncSession, record: ApiRecord) -> None:
    """Overwrite the entry with ``record.id``."""
    values = _values(record)
    del values["id"]
    await session.execute(update(apis).where(apis.c.id == record.id).values(**values))


async def remove(session: AsyncSession, api_id: str) -> None:
    await session.execute(delete(apis).where(apis.c.id == api_id))
