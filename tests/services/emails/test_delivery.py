"""Delivery: scheduled sends, retries with backoff, failures, restarts and crashes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from m3o.runtime.store import SessionFactory
from m3o.services.emails.courier import RetryPolicy
from m3o.services.emails.records import Status
from m3o.services.emails.transport import DeliveryError
from services.emails.support import START, RecordingTransport, World, call, make_world, send_request
from support.services import MovableClock

HOUR = 3600


async def test_a_scheduled_email_is_not_sent_before_its_time_and_is_sent_after(
    world: World, transport: RecordingTransport, clock: MovableClock
) -> None:
    send_at = int(START.timestamp()) + HOUR
    email_id = await world.send(send_request(send_at=send_at))

    assert transport.attempts == 0
    clock.advance(timedelta(seconds=HOUR - 1))
    assert await world.courier.deliver_due() == 0
    assert transport.attempts == 0
    assert (await world.email(email_id)).status is Status.PENDING

    clock.advance(timedelta(seconds=1))
    assert await world.courier.deliver_due() == 1

    [sent] = transport.sent
    assert sent.id == email_id
    stored = await world.email(email_id)
    assert stored.status is Status.SENT
    assert stored.sent_at == clock.now
    assert int(stored.send_at.timestamp()) == send_at


async def test_a_scheduled_email_survives_a_restart(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    before = make_world(sessions, RecordingTransport(), clock)
    email_id = await before.send(send_request(send_at=int(START.timestamp()) + HOUR))
    del before  # the process stops; only the database remains

    clock.advance(timedelta(seconds=HOUR))
    after_transport = RecordingTransport()
    after = make_world(sessions, after_transport, clock)
    await after.courier.deliver_due()

    assert [sent.id for sent in after_transport.sent] == [email_id]
    assert (await after.email(email_id)).status is Status.SENT


async def test_a_transient_failure_is_retried_with_exponential_backoff(
    world: World, transport: RecordingTransport, clock: MovableClock
) -> None:
    transport.failures.extend([DeliveryError("503"), DeliveryError("503")])

    email_id = await world.send()
    first = await world.email(email_id)
    assert (first.status, first.attempts, first.last_error) == (Status.PENDING, 1, "503")
    assert first.due == START + timedelta(seconds=10)

    clock.advance(timedelta(seconds=9))
    assert await world.courier.deliver_due() == 0
    clock.advance(timedelta(seconds=1))
    assert await world.courier.deliver_due() == 1
    second = await world.email(email_id)
    assert (second.status, second.attempts) == (Status.PENDING, 2)
    assert second.due == clock.now + timedelta(seconds=20)

    clock.advance(timedelta(seconds=20))
    assert await world.courier.deliver_due() == 1
    third = await world.email(email_id)
    assert (third.status, third.attempts, third.last_error) == (Status.SENT, 3, "")
    assert len(transport.sent) == 1


async def test_an_email_failing_every_attempt_is_marked_failed_and_left_alone(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    transport = RecordingTransport(failures=[DeliveryError(f"down {n}") for n in range(10)])
    world = make_world(sessions, transport, clock, policy=RetryPolicy(max_attempts=3))

    email_id = await world.send()
    for _ in range(5):
        clock.advance(timedelta(hours=1))
        await world.courier.deliver_due()

    stored = await world.email(email_id)
    assert stored.status is Status.FAILED
    assert stored.attempts == 3
    assert stored.last_error == "down 2"
    assert transport.attempts == 3
    assert [e.id for e in await world.emails(status="failed")] == [email_id]


async def test_a_permanent_failure_is_not_retried(
    world: World, transport: RecordingTransport, clock: MovableClock
) -> None:
    transport.failures.append(DeliveryError("400 bad from address", permanent=True))

    email_id = await world.send()
    clock.advance(timedelta(hours=1))
    await world.courier.deliver_due()

    stored = await world.email(email_id)
    assert (stored.status, stored.attempts) == (Status.FAILED, 1)
    assert stored.last_error == "400 bad from address"
    assert transport.attempts == 1


async def _crash_while_sending(world: World, transport: RecordingTransport) -> str:
    """Send, and stop the process while the transport is sending; returns the email id."""
    transport.hang = asyncio.Event()
    response = await world.handler.send(send_request(), call("Send"))
    await transport.entered.wait()
    await world.courier.drain(timeout=0)  # stopping: the attempt is cut short
    return response.id


async def test_an_email_whose_send_was_interrupted_is_sent_again_after_a_restart(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    crashed = RecordingTransport()
    email_id = await _crash_while_sending(make_world(sessions, crashed, clock), crashed)

    restarted_transport = RecordingTransport()
    restarted = make_world(sessions, restarted_transport, clock)
    assert await restarted.courier.deliver_due() == 0  # the crashed attempt still holds it

    clock.advance(timedelta(minutes=1))  # the default lease
    assert await restarted.courier.deliver_due() == 1

    assert [sent.id for sent in restarted_transport.sent] == [email_id]
    stored = await restarted.email(email_id)
    assert (stored.status, stored.attempts) == (Status.SENT, 2)


async def test_an_email_interrupted_on_its_last_attempt_is_failed(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    policy = RetryPolicy(max_attempts=1)
    crashed = RecordingTransport()
    email_id = await _crash_while_sending(
        make_world(sessions, crashed, clock, policy=policy), crashed
    )

    clock.advance(timedelta(minutes=1))
    after_transport = RecordingTransport()
    after = make_world(sessions, after_transport, clock, policy=policy)
    await after.courier.deliver_due()

    stored = await after.email(email_id)
    assert stored.status is Status.FAILED
    assert "did not finish" in stored.last_error
    assert after_transport.attempts == 0


async def test_two_couriers_never_send_one_email_twice(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    scheduler = make_world(sessions, RecordingTransport(), clock)
    for n in range(5):
        later = int(START.timestamp()) + HOUR
        await scheduler.send(send_request(to=f"user{n}@example.com", send_at=later))
    clock.advance(timedelta(seconds=HOUR))
    first, second = RecordingTransport(), RecordingTransport()
    one = make_world(sessions, first, clock)
    two = make_world(sessions, second, clock)

    await asyncio.gather(one.courier.deliver_due(), two.courier.deliver_due())

    sent = [email.id for email in first.sent + second.sent]
    assert len(sent) == 5
    assert len(set(sent)) == 5
    assert {e.status for e in await one.emails()} == {Status.SENT}
