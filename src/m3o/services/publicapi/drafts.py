"""Turning what a publisher sends into a complete, checked entry.

A draft is an :class:`~m3o.services.publicapi.records.ApiRecord` built from a Publish (every
field) or from the stored entry with an Update's set fields applied. Finishing it:

1. descriptors: the given ones are parsed; a grpc upstream without any is asked by gRPC
   reflection (a ``local:`` upstream cannot be: its descriptors must be given);
2. a grpc upstream must declare at least one endpoint;
3. pricing and quota keys must name declared endpoints (any ``<Service>.<Method>`` when
   the descriptors are unknown), and so must the usage endpoint (a unary method taking a
   ``tenant_id`` string);
4. OpenAPI: kept when the publisher gave one; else generated from the descriptors, and
   generated again whenever the entry changes, so it follows renames and new descriptors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from m3o.runtime.errors import BadRequest
from m3o.runtime.logging import get_logger
from m3o.services.publicapi.descriptors import DescriptorError, Descriptors
from m3o.services.publicapi.openapi import generate_openapi
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.records import ApiRecord
from m3o.services.publicapi.reflection import ReflectionError
from m3o.services.publicapi.validation import (
    GRPC,
    MAX_DESCRIPTORS_BYTES,
    check_document,
    check_icon,
    check_prices,
    check_text,
    check_upstream,
    check_usage_endpoint,
    normalise_name,
)

__all__ = ["DescriptorFetcher", "Finisher", "apply_update", "draft_from"]

DescriptorFetcher = Callable[[str], Awaitable[bytes]]
"""Fetches the serialized FileDescriptorSet a grpc address serves (gRPC reflection);
raises ReflectionError naming the upstream."""

_log = get_logger(__name__)


def _check_descriptor_size(error_id: str, raw: bytes) -> bytes:
    if len(raw) > MAX_DESCRIPTORS_BYTES:
        raise BadRequest(error_id, f"descriptors are larger than {MAX_DESCRIPTORS_BYTES} bytes")
    return raw


def draft_from(error_id: str, api: pb.PublicAPI, template: ApiRecord) -> ApiRecord:
    """Every field of a Publish, checked, over ``template`` (id, owner and times)."""
    upstream = check_upstream(error_id, api.upstream.address, api.upstream.protocol)
    return replace(
        template,
        name=normalise_name(error_id, api.name),
        display_name=check_text(error_id, "display_name", api.display_name.strip()),
        description=check_text(error_id, "description", api.description),
        category=check_text(error_id, "category", api.category.strip()),
        icon=check_icon(error_id, api.icon.strip()),
        open_api_json=check_document(error_id, "open_api_json", api.open_api_json),
        open_api_generated=False,
        examples_json=check_document(error_id, "examples_json", api.examples_json),
        postman_json=check_document(error_id, "postman_json", api.postman_json),
        pricing=dict(api.pricing),
        quotas=dict(api.quotas),
        owner_id=check_text(error_id, "owner_id", api.owner_id.strip()) or template.owner_id,
        upstream_address=upstream.address,
        upstream_protocol=upstream.protocol,
        descriptors=_check_descriptor_size(error_id, api.descriptors),
        endpoints=(),
        usage_endpoint=api.usage_endpoint.strip(),
    )


_STRIPPED_TEXT = ("display_name", "category", "owner_id")
_DOCUMENTS = ("examples_json", "postman_json", "open_api_json")


def _text_changes(error_id: str, api: pb.PublicAPI) -> dict[str, object]:
    changes: dict[str, object] = {}
    if api.name.strip():
        changes["name"] = normalise_name(error_id, api.name)
    for field in _STRIPPED_TEXT:
        value = getattr(api, field).strip()
        if value:
            changes[field] = check_text(error_id, field, value)
    if api.description:
        changes["description"] = check_text(error_id, "description", api.description)
    if api.icon.strip():
        changes["icon"] = check_icon(error_id, api.icon.strip())
    for field in _DOCUMENTS:
        value = getattr(api, field)
        if value:
            changes[field] = check_document(error_id, field, value)
    if api.open_api_json:
        changes["open_api_generated"] = False
    return changes


def apply_update(error_id: str, current: ApiRecord, api: pb.PublicAPI) -> ApiRecord:
    """``current`` with the set (non-empty) fields of ``api`` applied, each checked."""
    changes = _text_changes(error_id, api)
    if api.pricing:
        changes["pricing"] = dict(api.pricing)
    if api.quotas:
        changes["quotas"] = dict(api.quotas)
    if api.upstream.address.strip():
        upstream = check_upstream(error_id, api.upstream.address, api.upstream.protocol)
        changes["upstream_address"] = upstream.address
        changes["upstream_protocol"] = upstream.protocol
    if api.descriptors:
        changes["descriptors"] = _check_descriptor_size(error_id, api.descriptors)
    if api.usage_endpoint.strip():
        changes["usage_endpoint"] = api.usage_endpoint.strip()
    return replace(current, **changes)  # type: ignore[arg-type]


class Finisher:
    """Completes drafts: descriptors, endpoints, price checks, OpenAPI."""

    def __init__(self, fetch: DescriptorFetcher) -> None:
        self._fetch = fetch

    async def _descriptors(self, error_id: str, draft: ApiRecord) -> Descriptors | None:
        raw = draft.descriptors
        fetched = False
        if not raw:
            if draft.upstream_protocol != GRPC:
                return None
            if draft.upstream_address.startswith("local:"):
                raise BadRequest(
                    error_id, f"Descriptors are required for upstream {draft.upstream_address}"
                )
            try:
                raw = await self._fetch(draft.upstream_address)
            except ReflectionError as exc:
                _log.info("publicapi.reflection_failed", api=draft.name, reason=str(exc))
                raise BadRequest(error_id, str(exc)) from None
            fetched = True
        try:
            return Descriptors(raw)
        except DescriptorError as exc:
            source = f"upstream {draft.upstream_address} described" if fetched else "descriptors"
            raise BadRequest(error_id, f"Invalid {source}: {exc}") from None

    async def finish(self, error_id: str, draft: ApiRecord) -> ApiRecord:
        descriptors = await self._descriptors(error_id, draft)
        endpoints = None if descriptors is None else descriptors.endpoints
        if draft.upstream_protocol == GRPC and not endpoints:
            raise BadRequest(error_id, "The descriptors declare no endpoint")
        finished = replace(
            draft,
            descriptors=b"" if descriptors is None else descriptors.raw,
            endpoints=() if endpoints is None else tuple(endpoints),
            pricing=check_prices(error_id, "pricing", draft.pricing, endpoints),
            quotas=check_prices(error_id, "quotas", draft.quotas, endpoints),
            usage_endpoint=check_usage_endpoint(error_id, draft.usage_endpoint, descriptors),
        )
        if finished.open_api_json and not finished.open_api_generated:
            return finished
        if descriptors is None:
            return replace(finished, open_api_json="", open_api_generated=False)
        document = generate_openapi(
            name=finished.name,
            display_name=finished.display_name,
            description=finished.description,
            descriptors=descriptors,
            hidden=finished.usage_endpoint,
        )
        return replace(finished, open_api_json=document, open_api_generated=True)
