"""The ``customers`` events this service publishes (in the transaction of their change)."""

from __future__ import annotations

from m3o.events.customers import events_pb2 as events_pb

__all__ = ["customer_event"]


def customer_event(
    event_type: events_pb.EventType.ValueType,
    customer: events_pb.Customer,
    caller_id: str,
    *,
    login: events_pb.Login | None = None,
) -> events_pb.Event:
    """A ``customers`` event about ``customer`` (its state after the change)."""
    event = events_pb.Event(type=event_type, customer=customer, caller_id=caller_id)
    if login is not None:
        event.login.CopyFrom(login)
    return event
