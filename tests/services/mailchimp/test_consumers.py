"""customers events: a signup adds the customer, a deletion deletes them, anything else is
ignored; a transient failure is retried by the bus, a refusal acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m3o.events import customers as customers_events
from m3o.runtime.events import Delivery
from m3o.runtime.outbound import OutboundError
from m3o.services.mailchimp.audience import LocalAudience
from m3o.services.mailchimp.consumers import CustomerSync
from m3o.services.mailchimp.handler import Membership
from services.mailchimp.support import LIST_ID, MailchimpFake, audience

_Type = customers_events.EventType


def _delivery(kind: int, email: str, event_id: str = "evt-1") -> Delivery:
    event = customers_events.Event(
        type=kind,  # type: ignore[arg-type]
        customer=customers_events.events_pb2.Customer(id="ann-0001", email=email),
    )
    return Delivery(
        id=event_id,
        topic=customers_events.TOPIC,
        type_name=_Type.Name(kind),
        time=datetime.now(UTC),
        payload=event.SerializeToString(),
    )


async def test_signups_are_added_and_deletions_deleted() -> None:
    sink = LocalAudience()
    sync = CustomerSync(membership=Membership(audience=sink, block_list=["blocked@example.com"]))
    await sync.handle(_delivery(_Type.EventTypeSignup, "Ann@Example.com"))
    await sync.handle(_delivery(_Type.EventTypeSignup, "BLOCKED@example.com"))
    await sync.handle(_delivery(_Type.EventTypeDeleted, "bob@example.com"))
    for other in (_Type.EventTypeCreated, _Type.EventTypeLogin, _Type.EventTypeVerified):
        await sync.handle(_delivery(other, "carol@example.com"))
    await sync.handle(_delivery(_Type.EventTypeSignup, ""))
    assert sink.added == ["ann@example.com"]
    assert sink.deleted == ["bob@example.com"]
    assert sync.consumer().topic == customers_events.TOPIC


async def test_a_repeated_signup_puts_the_same_member(mailchimp: tuple[MailchimpFake, str]) -> None:
    fake, url = mailchimp
    real = audience(url)
    sync = CustomerSync(membership=Membership(audience=real, block_list=[]))
    try:
        await sync.handle(_delivery(_Type.EventTypeSignup, "ann@example.com"))
        await sync.handle(_delivery(_Type.EventTypeSignup, "ann@example.com"))
    finally:
        await real.close()
    assert [r.method for r in fake.received] == ["PUT", "PUT"]
    assert fake.received[0] == fake.received[1]
    assert fake.received[0].path.startswith(f"/3.0/lists/{LIST_ID}/members/")


async def test_a_transient_failure_raises_so_the_bus_retries(
    mailchimp: tuple[MailchimpFake, str],
) -> None:
    fake, url = mailchimp
    fake.answers = [503, 503, 503]
    real = audience(url)
    sync = CustomerSync(membership=Membership(audience=real, block_list=[]))
    try:
        with pytest.raises(OutboundError):
            await sync.handle(_delivery(_Type.EventTypeSignup, "ann@example.com"))
        fake.answers = [400]
        await sync.handle(_delivery(_Type.EventTypeDeleted, "ann@example.com"))
    finally:
        await real.close()
    assert len(fake.received) == 4
