"""The ``customers`` events balance publishes: BalanceIncrement, BalanceDecrement and
BalanceZero, each written in the transaction of the change it describes (the outbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from m3o.events.customers import TOPIC, Event, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.events import Publisher

__all__ = ["publish_adjustment", "publish_zero", "zero_crossing"]


async def publish_adjustment(
    publisher: Publisher,
    session: AsyncSession,
    *,
    customer_id: str,
    delta: int,
    kind: str,
    reference: str,
    caller_id: str,
) -> None:
    """BalanceIncrement for a credit, BalanceDecrement (with a positive amount) for a debit."""
    event = Event(customer=events_pb.Customer(id=customer_id), caller_id=caller_id)
    if delta >= 0:
        event.type = EventType.EventTypeBalanceIncrement
        event.balance_increment.CopyFrom(
            events_pb.BalanceIncrement(amount=delta, type=kind, reference=reference)
        )
    else:
        event.type = EventType.EventTypeBalanceDecrement
        event.balance_decrement.CopyFrom(
            events_pb.BalanceDecrement(amount=-delta, type=kind, reference=reference)
        )
    await publisher.publish(TOPIC, event, session=session)


async def publish_zero(
    publisher: Publisher, session: AsyncSession, *, customer_id: str, caller_id: str
) -> None:
    """BalanceZero: the customer's balance went from above zero to zero or below."""
    event = Event(
        type=EventType.EventTypeBalanceZero,
        customer=events_pb.Customer(id=customer_id),
        caller_id=caller_id,
    )
    await publisher.publish(TOPIC, event, session=session)


def zero_crossing(at_zero: bool, balance: int) -> tuple[bool, bool]:
    """``(at_zero after, publish BalanceZero now)`` for an account whose flag was
    ``at_zero`` and whose balance is now ``balance``: once per stretch at or below zero."""
    if balance > 0:
        return False, False
    return True, not at_zero
