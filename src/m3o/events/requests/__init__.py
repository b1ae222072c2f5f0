"""Events about metered calls (``requests`` topic)."""

from m3o.events.requests.events_pb2 import Event, EventType, Request

__all__ = ["TOPIC", "Event", "EventType", "Request"]

TOPIC = "requests"
