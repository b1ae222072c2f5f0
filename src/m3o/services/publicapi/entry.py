"""A catalog entry as the gateway uses it: typed, with its descriptors parsed.

Names are lower-case; pricing and quota lookups ignore case (``helloworld$Helloworld.Call``
is priced by a ``helloworld.call`` key as well); an endpoint with no price or quota has 0.
For an API without descriptors, the endpoints its prices and free quotas name are the ones
it declares, spelled as they were written (:meth:`CatalogEntry.declared_name`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from m3o.runtime.logging import get_logger
from m3o.runtime.rpc.endpoints import find_endpoint
from m3o.services.publicapi.descriptors import DescriptorError, Descriptors, Endpoint
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.validation import GRPC, Upstream

__all__ = ["CatalogEntry"]

_log = get_logger(__name__)


def _lowered(prices: Mapping[str, int]) -> dict[str, int]:
    return {key.lower(): int(value) for key, value in prices.items()}


def _spellings(*named: Mapping[str, int]) -> dict[str, str]:
    """Lower-cased endpoint name -> the name as written (the first spelling wins)."""
    found: dict[str, str] = {}
    for names in named:
        for name in sorted(names):
            found.setdefault(name.lower(), name)
    return found


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One API of the catalog."""

    id: str
    name: str
    display_name: str
    upstream: Upstream
    description: str = ""
    category: str = ""
    icon: str = ""
    owner_id: str = ""
    pricing: Mapping[str, int] = field(default_factory=dict)
    """``<service>.<method>`` (lower-case) -> price of one call in 1/10,000ths of a cent."""
    quotas: Mapping[str, int] = field(default_factory=dict)
    """``<service>.<method>`` (lower-case) -> free calls per month per project."""
    descriptors: Descriptors | None = None
    """The upstream's parsed descriptors; None when unknown (an http upstream)."""
    updated: int = 0
    named: Mapping[str, str] = field(default_factory=dict)
    """Lower-cased ``<service>.<method>`` -> as the prices or free quotas spell it."""
    usage_endpoint: str = ""
    """``<Service>.<Method>`` reporting a tenant's unit usage; empty when the API reports
    none."""

    @classmethod
    def from_proto(cls, api: pb.PublicAPI, previous: CatalogEntry | None = None) -> CatalogEntry:
        """The entry ``api`` describes; descriptors already parsed for ``previous`` are
        reused when unchanged."""
        return cls(
            id=api.id,
            name=api.name.lower(),
            display_name=api.display_name or api.name,
            upstream=Upstream(api.upstream.address, api.upstream.protocol or GRPC),
            description=api.description,
            category=api.category,
            icon=api.icon,
            owner_id=api.owner_id,
            pricing=_lowered(api.pricing),
            quotas=_lowered(api.quotas),
            descriptors=_descriptors(api, previous),
            updated=api.updated,
            named=_spellings(api.pricing, api.quotas),
            usage_endpoint=api.usage_endpoint,
        )

    @property
    def raw_descriptors(self) -> bytes:
        """The serialized FileDescriptorSet (empty when unknown)."""
        return b"" if self.descriptors is None else self.descriptors.raw

    @property
    def pool(self) -> DescriptorPool | None:
        """A descriptor pool holding the upstream's messages (for dynamic messages)."""
        return None if self.descriptors is None else self.descriptors.pool

    @property
    def endpoints(self) -> Sequence[Endpoint]:
        """The endpoints the descriptors declare, sorted by name (with whether each
        streams); empty when the descriptors are unknown."""
        return () if self.descriptors is None else self.descriptors.endpoints

    def price(self, endpoint: str) -> int:
        """Price of one call to ``endpoint`` (``Helloworld.Call``, any case); 0 when free."""
        return self.pricing.get(endpoint.lower(), 0)

    def quota(self, endpoint: str) -> int:
        """Free calls a month to ``endpoint`` (any case); 0 when none."""
        return self.quotas.get(endpoint.lower(), 0)

    def declared_name(self, endpoint: str) -> str | None:
        """``endpoint`` (any case) as the API's prices or free quotas spell it; None when
        they do not name it."""
        return self.named.get(endpoint.lower())

    def endpoint(self, name: str) -> Endpoint | None:
        """The declared endpoint called ``name`` (``Helloworld.Call``, any case)."""
        wanted = name.lower()
        for endpoint in self.endpoints:
            if endpoint.name.lower() == wanted:
                return endpoint
        return None

    def endpoint_for_path(self, parts: Sequence[str]) -> Endpoint | None:
        """The endpoint ``/v1/<api>/<parts...>`` names: ``["Call"]`` (the main service's
        method) or ``["Helloworld", "Call"]``, by the gateway's rule
        (:func:`m3o.runtime.rpc.endpoints.find_endpoint`). None when none."""
        if len(parts) == 1:
            return find_endpoint(self.name, self.endpoints, self.name, parts[0], short=True)
        if len(parts) == 2:
            return find_endpoint(self.name, self.endpoints, parts[0], parts[1], short=False)
        return None

    def method(self, endpoint: Endpoint) -> MethodDescriptor:
        """The protobuf descriptor of a declared endpoint (request and response types)."""
        if self.descriptors is None:
            raise KeyError(endpoint.name)
        service = self.descriptors.pool.FindServiceByName(endpoint.service)
        return service.methods_by_name[endpoint.method]


def _descriptors(api: pb.PublicAPI, previous: CatalogEntry | None) -> Descriptors | None:
    if not api.descriptors:
        return None
    if previous is not None and previous.raw_descriptors == api.descriptors:
        return previous.descriptors
    try:
        return Descriptors(api.descriptors)
    except DescriptorError as exc:
        # publicapi checks descriptors at publish; an entry older than a check still serves
        # (without typed endpoints) rather than taking the whole catalog down.
        _log.warning("publicapi.entry_descriptors_invalid", api=api.name, reason=str(exc))
        return None
