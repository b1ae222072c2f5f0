"""Events about payments (``stripe`` topic)."""

from m3o.events.stripe.events_pb2 import Event, EventType

__all__ = ["TOPIC", "Event", "EventType"]

TOPIC = "stripe"
