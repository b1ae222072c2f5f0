"""Events about the API catalog (``publicapi`` topic)."""

from m3o.events.publicapi.events_pb2 import Event, EventType

__all__ = ["TOPIC", "Event", "EventType"]

TOPIC = "publicapi"
