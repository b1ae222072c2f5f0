"""Events about projects (``projects`` topic)."""

from m3o.events.projects.events_pb2 import Event, EventType

__all__ = ["TOPIC", "Event", "EventType"]

TOPIC = "projects"
