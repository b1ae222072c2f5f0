"""What the public API needs from the rest of the platform, as small interfaces.

The gateway reads keys, the catalog, tiers and the counter names that usage, balance and v1
own. :mod:`m3o.gateway.v1.sources` implements these interfaces with what those services
export for the hot path; tests pass simple implementations of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.protobuf.descriptor_pool import DescriptorPool

from m3o.runtime.counters.admission import AdmissionDecision, AdmissionRequest, Hold
from m3o.runtime.events import Envelope

__all__ = [
    "Alerts",
    "ApiEndpoint",
    "ApiKey",
    "BalanceLoader",
    "Catalog",
    "CatalogEntry",
    "EventSpill",
    "KeyDirectory",
    "PlannedCall",
    "Quotas",
    "ServedCharges",
    "ServedHolds",
    "UpstreamAddress",
]


class ApiKey(Protocol):
    """A key record as calls are checked against it (``m3o.services.v1.KeyRecord``)."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str:
        """The project the key belongs to: the caller of every request made with it."""
        ...

    @property
    def billing_account(self) -> str:
        """The customer who pays for the project."""
        ...

    @property
    def status_message(self) -> str: ...

    @property
    def blocked(self) -> bool: ...

    def permits(self, api_name: str) -> bool:
        """Whether a scope of the key lets it call ``api_name``."""
        ...


class KeyDirectory(Protocol):
    async def find(self, api_key: str) -> ApiKey | None:
        """The record of ``api_key``; None when it is malformed, unknown, revoked or
        expired. Raises Unavailable when that cannot be told now."""
        ...


class UpstreamAddress(Protocol):
    @property
    def address(self) -> str:
        """``host:port`` (grpc), a base URL (http) or ``local:<service>``."""
        ...

    @property
    def protocol(self) -> str:
        """``grpc`` or ``http``."""
        ...


class ApiEndpoint(Protocol):
    """One method an API's descriptors declare (``m3o.services.publicapi.view.Endpoint``)."""

    @property
    def name(self) -> str:
        """``<Service>.<Method>`` with the service's short name (``Helloworld.Call``)."""
        ...

    @property
    def service(self) -> str:
        """The service's full protobuf name (``helloworld.Helloworld``)."""
        ...

    @property
    def method(self) -> str: ...

    @property
    def request_type(self) -> str:
        """Full protobuf name of the request message."""
        ...

    @property
    def response_type(self) -> str: ...

    @property
    def client_streaming(self) -> bool: ...

    @property
    def server_streaming(self) -> bool: ...


class CatalogEntry(Protocol):
    """One published API (``m3o.services.publicapi.view.CatalogEntry``)."""

    @property
    def name(self) -> str:
        """Lower-case."""
        ...

    @property
    def upstream(self) -> UpstreamAddress: ...

    @property
    def pool(self) -> DescriptorPool | None:
        """The upstream's messages; None when the descriptors are unknown."""
        ...

    @property
    def endpoints(self) -> Sequence[ApiEndpoint]:
        """What the descriptors declare; empty when they are unknown."""
        ...

    @property
    def usage_endpoint(self) -> str:
        """``<Service>.<Method>`` reporting a tenant's unit usage; empty when the API
        reports none."""
        ...

    def price(self, endpoint: str) -> int:
        """Price of one call to ``endpoint`` (any case), 1/10,000ths of a cent; 0: free."""
        ...

    def quota(self, endpoint: str) -> int:
        """Free calls per project per month to ``endpoint`` (any case); 0: none."""
        ...

    def declared_name(self, endpoint: str) -> str | None:
        """``endpoint`` (any case) as the API's prices or free quotas spell it; None when
        they do not name it (how an API without descriptors declares endpoints)."""
        ...


class Catalog(Protocol):
    def get(self, api_name: str) -> CatalogEntry | None:
        """The entry of ``api_name`` (any case); None when no such API is published."""
        ...

    @property
    def loaded(self) -> bool:
        """Whether the catalog has been read at all (an unread catalog knows no API, which
        says nothing of what is published)."""
        ...


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """What admission needs to know about one call."""

    project_id: str
    customer_id: str
    """The billing customer: their balance pays and their subscription sets the tier."""
    api: str
    endpoint: str
    """``<Service>.<Method>``."""
    price: int
    endpoint_quota: int
    reports_units: bool = False
    """The API reports its unit usage: a usage cap compares with what it reported."""


class Quotas(Protocol):
    """Tiers, limits and the counter names of admission, as usage, balance and v1 define
    them."""

    async def tier(self, customer_id: str) -> str:
        """The customer's subscription tier (a counter-store read). Raises Unavailable."""
        ...

    def request(self, call: PlannedCall, tier: str, now: datetime) -> AdmissionRequest:
        """The admission of ``call`` on ``tier`` at ``now``."""
        ...

    async def store_units(self, key: str, units: int) -> None:
        """Remember the unit usage an API reported under ``key`` (a request's ``cap_key``
        with ``cap_reported``). Raises Unavailable."""
        ...


class BalanceLoader(Protocol):
    async def load(self, customer_id: str) -> None:
        """Have the balance service load the customer's hot balance into the counter
        store (``balance.Current``). Raises an error kind when it cannot."""
        ...


class Alerts(Protocol):
    async def report(
        self, category: str, action: str, user_id: str, metadata: dict[str, str]
    ) -> None:
        """Tell operators (``panic`` when an upstream crashed, ``action`` the path)."""
        ...


class EventSpill(Protocol):
    """Durable storage for the request events the gateway cannot keep in memory while
    their stream is unreachable (the platform's outbox, whose relay delivers them later)."""

    async def spill(self, envelopes: Sequence[Envelope]) -> None:
        """Store ``envelopes`` durably, in one write, to be delivered later with their ids
        (at least once). Raises when they could not be stored."""
        ...

    async def waiting(self, topic: str) -> int:
        """Events of ``topic`` stored and not yet delivered to their stream."""
        ...


class ServedCharges(Protocol):
    """Commits a served call's charge before its answer leaves (the ``local`` profile, whose
    one process owns the counters: :mod:`m3o.runtime.counters.owned`)."""

    async def commit(
        self, request: AdmissionRequest, decision: AdmissionDecision, envelope: Envelope
    ) -> None:
        """Make the call's charge and its requests/Request event durable together; returns
        once they are. Raises :class:`~m3o.runtime.errors.M3OError` when they could not be:
        the call is then released (answered free) and its event dropped with it."""
        ...


class ServedHolds(Protocol):
    """Finishes served calls' holds by publishing their events in the same atomic step (the
    ``platform`` profile: :class:`~m3o.runtime.events.redis_served.RedisServedHolds`)."""

    async def settle_served(self, served: Sequence[tuple[Hold, Envelope]]) -> list[bool]:
        """For each (hold, event): True when the hold was still there (the event published,
        the hold removed, its charge kept), False when it was gone (released: nothing
        published). Raises :class:`~m3o.runtime.errors.M3OError` when the store could not
        be reached."""
        ...
