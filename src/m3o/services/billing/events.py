"""The events billing publishes."""

from __future__ import annotations

from m3o.events.customers import Event, EventType
from m3o.events.customers import events_pb2 as customers_pb

__all__ = ["subscription_changed"]


def subscription_changed(account_id: str, tier: str, caller_id: str) -> Event:
    """customers/SubscriptionChanged: the account's customer (the account's id) now pays for
    ``tier``; usage and projects apply it to the customer and every project it pays for."""
    return Event(
        type=EventType.EventTypeSubscriptionChanged,
        customer=customers_pb.Customer(id=account_id),
        caller_id=caller_id,
        subscription_changed=customers_pb.SubscriptionChanged(tier=tier),
    )
