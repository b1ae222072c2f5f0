"""The customer a request is about: read through the customers service, told in events."""

from __future__ import annotations

from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.auth import CallContext
from m3o.runtime.errors import NotFound
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService
from m3o.services.signup.calls import CALLS

__all__ = ["BANNED", "MAY_LOG_IN", "UNVERIFIED", "VERIFIED", "customer_event", "read_customer"]

UNVERIFIED = "unverified"
VERIFIED = "verified"
BANNED = "banned"
MAY_LOG_IN = frozenset({VERIFIED, "active"})
"""Statuses of customers who have an account and may log in (and so recover it)."""


async def read_customer(
    ctx: CallContext, customers: CustomersService, *, customer_id: str = "", email: str = ""
) -> customers_pb.Customer | None:
    """The customer with ``customer_id`` (else ``email``); None if unknown or deleted."""
    try:
        found = await CALLS.call(
            ctx,
            "customers.read",
            customers.read(customers_pb.ReadRequest(id=customer_id, email=email)),
            passes=(NotFound,),
        )
    except NotFound:
        return None
    return found.customer


def customer_event(
    event_type: events_pb.EventType.ValueType,
    customer: customers_pb.Customer,
    *,
    status: str = "",
) -> events_pb.Event:
    """A ``customers`` event about ``customer`` (with ``status`` instead of its own, if
    given), caused by the customer itself."""
    return events_pb.Event(
        type=event_type,
        customer=events_pb.Customer(
            id=customer.id,
            status=status or customer.status,
            created=customer.created,
            email=customer.email,
            updated=customer.updated,
            name=customer.name,
            meta=dict(customer.meta),
        ),
        caller_id=customer.id,
    )
