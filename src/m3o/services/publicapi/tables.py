"""Tables the publicapi service owns.

``publicapi_apis`` holds the catalog: one row per API, its name unique (lower-case), so
two concurrent Publishes of one name give one entry.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, LargeBinary, String, Table, Text

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["apis", "metadata"]

metadata = new_metadata()

apis = Table(
    "publicapi_apis",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(64), nullable=False),
    Column("icon", Text, nullable=False),
    Column("open_api_json", Text, nullable=False),
    # the document was generated from the descriptors (regenerated when they change)
    Column("open_api_generated", Boolean, nullable=False),
    Column("examples_json", Text, nullable=False),
    Column("postman_json", Text, nullable=False),
    # <Service>.<Method> -> int, as given (lookups are case-insensitive)
    Column("pricing", JSON, nullable=False),
    Column("quotas", JSON, nullable=False),
    Column("owner_id", String(200), nullable=False),
    Column("upstream_address", String(500), nullable=False),
    Column("upstream_protocol", String(8), nullable=False),
    # a serialized google.protobuf.FileDescriptorSet; empty when unknown (http upstreams)
    Column("descriptors", LargeBinary, nullable=False),
    # the endpoints the descriptors declare (derived at write time, so reads need not
    # parse the descriptors): [{name, service, method, request_type, response_type,
    # client_streaming, server_streaming}]
    Column("endpoints", JSON, nullable=False),
    # <Service>.<Method> reporting a tenant's unit usage; "" for none
    Column("usage_endpoint", String(200), nullable=False, server_default=""),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
)
