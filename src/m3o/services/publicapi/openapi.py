"""An API's OpenAPI 3.1 document, generated from its descriptors when none is published.

One ``POST`` path per endpoint, relative to the ``/v1`` server, at the path the gateway
serves it (:mod:`m3o.runtime.rpc.endpoints`). Request and response schemas follow the
JSON mapping of :mod:`m3o.runtime.rpc.jsonmap` (proto field names, 64-bit integers as JSON
integers, enums as string enums, maps as objects, repeated fields as arrays), messages as
``$ref`` components named by their full protobuf name. Streaming endpoints are marked
``x-stream`` (``server``, ``client`` or ``bidirectional``): /v1 serves them over a
websocket. Comments become descriptions when the descriptors carry source info.

A field whose comment starts with ``Required`` (``// Required. the city``) is listed in its
message's ``required``, and a required string or list must not be empty (``minLength`` /
``minItems`` 1): proto3 cannot tell an absent field from an empty one. Nothing is
``nullable``: the JSON mapping never writes ``null``.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from m3o.runtime.rpc.endpoints import endpoint_path, main_service
from m3o.runtime.rpc.json_schema import (
    ERROR_REF,
    ERROR_SCHEMA,
    WELL_KNOWN,
    Comment,
    SchemaBuilder,
    schema_ref,
)
from m3o.services.publicapi.comments import comments_of
from m3o.services.publicapi.descriptors import Descriptors, Endpoint

__all__ = ["ERROR_SCHEMA", "generate_openapi"]

# Kept looser than the platform API's for these two, as published documents always had them.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    **WELL_KNOWN,
    "google.protobuf.Duration": {"type": "string"},
    "google.protobuf.Any": {"type": "object", "additionalProperties": True},
}


def _comment_of(comments: dict[str, str]) -> Comment:
    def comment(descriptor: Descriptor | EnumDescriptor | FieldDescriptor) -> str | None:
        return comments.get(descriptor.full_name)

    return comment


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _stream_kind(endpoint: Endpoint) -> str:
    if endpoint.client_streaming and endpoint.server_streaming:
        return "bidirectional"
    return "client" if endpoint.client_streaming else "server"


def _operation(
    endpoint: Endpoint, schemas: SchemaBuilder, comments: dict[str, str], descriptors: Descriptors
) -> dict[str, Any]:
    request = descriptors.pool.FindMessageTypeByName(endpoint.request_type)
    response = descriptors.pool.FindMessageTypeByName(endpoint.response_type)
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.method,
        "tags": [endpoint.service.rsplit(".", 1)[-1]],
        "requestBody": {"required": True, "content": _json_body(schemas.message(request))},
        "responses": {
            "200": {"description": "The answer.", "content": _json_body(schemas.message(response))},
            "default": {"description": "An error.", "content": _json_body(schema_ref(ERROR_REF))},
        },
    }
    text = comments.get(f"{endpoint.service}.{endpoint.method}")
    if text:
        operation["description"] = text
    if endpoint.streaming:
        operation["x-stream"] = _stream_kind(endpoint)
    return operation


def generate_openapi(
    *,
    name: str,
    display_name: str,
    description: str,
    descriptors: Descriptors,
    hidden: str = "",
) -> str:
    """The OpenAPI document of API ``name``, as JSON text, without the endpoint named
    ``hidden`` (the usage endpoint: only the gateway calls it). Paths are those the
    gateway serves, so the main service is chosen among every service, the hidden one's
    too."""
    comments: dict[str, str] = {}
    for file in descriptors.files.file:
        comments.update(comments_of(file))
    schemas = SchemaBuilder(_comment_of(comments), well_known=_WELL_KNOWN)
    main = main_service(name, (endpoint.service for endpoint in descriptors.endpoints))
    paths = {
        endpoint_path(name, endpoint, main): {
            "post": _operation(endpoint, schemas, comments, descriptors)
        }
        for endpoint in descriptors.endpoints
        if endpoint.name.lower() != hidden.lower()
    }
    info: dict[str, Any] = {"title": display_name or name, "version": "1.0.0"}
    if description:
        info["description"] = description
    document = {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": "/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Your API key."}
            },
        },
    }
    return orjson.dumps(document).decode()
