"""The ``customers`` events the v1 service publishes about keys."""

from __future__ import annotations

from m3o.events.customers import EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.services.v1.records import KeyRow

__all__ = ["key_event"]


def key_event(
    event_type: EventType.ValueType,
    row: KeyRow,
    *,
    caller_id: str,
    customer_id: str = "",
    customer_email: str = "",
) -> events_pb.Event:
    """A GenerateKey, DeleteKey, BlockKey or UnblockKey event about ``row``.

    ``customer_id`` is the customer the event is about: the customer who acted, or (when
    empty) the one who pays for the key's project.
    """
    event = events_pb.Event(
        type=event_type,
        customer=events_pb.Customer(id=customer_id or row.billing_account, email=customer_email),
        caller_id=caller_id,
        project_id=row.owner,
    )
    if event_type == EventType.EventTypeGenerateKey:
        event.generate_key.CopyFrom(events_pb.GenerateKey(scopes=list(row.scopes), id=row.id))
    elif event_type == EventType.EventTypeDeleteKey:
        event.delete_key.CopyFrom(events_pb.DeleteKey(id=row.id))
    elif event_type == EventType.EventTypeBlockKey:
        event.block_key.CopyFrom(events_pb.BlockKey(id=row.id))
    elif event_type == EventType.EventTypeUnblockKey:
        event.unblock_key.CopyFrom(events_pb.UnblockKey(id=row.id))
    else:
        raise ValueError(f"not a key event type: {event_type}")
    return event
