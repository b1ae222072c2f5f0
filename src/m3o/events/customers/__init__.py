"""Events about customers (``customers`` topic)."""

from m3o.events.customers.events_pb2 import Event, EventType

__all__ = ["TOPIC", "Event", "EventType"]

TOPIC = "customers"
