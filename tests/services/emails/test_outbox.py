"""The local outbox and ListOutbox: what is recorded, what operators see, what logs show."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from m3o.runtime.errors import BadRequest, Forbidden, Unauthorized
from m3o.runtime.store import SessionFactory
from m3o.services.emails.outbox import format_outbox, list_outbox
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.transport import DeliveryError, LocalOutbox
from services.emails.support import (
    CODE,
    CUSTOMER,
    DEFAULT_FROM,
    SERVICE,
    START,
    RecordingTransport,
    World,
    call,
    make_world,
    send_request,
)
from support.services import MovableClock


@pytest.fixture
def local(sessions: SessionFactory, clock: MovableClock) -> World:
    """No transport configured: the local outbox."""
    return make_world(sessions, LocalOutbox(), clock)


async def test_without_a_transport_emails_are_recorded_and_logged_masked(local: World) -> None:
    with capture_logs() as logs:
        email_id = await local.send()

    [email] = await local.emails()
    assert email.id == email_id
    assert email.transport == "outbox"
    assert CODE in email.text
    [logged] = [entry for entry in logs if entry["event"] == "emails.outbox"]
    assert logged["to"] == "a***@example.com"
    assert logged["subject"] == "Verify your M3O account email"
    assert CODE not in repr(logs)
    assert "ann@example.com" not in repr(logs)


async def test_list_outbox_shows_recent_emails_newest_first(
    local: World, clock: MovableClock
) -> None:
    first = await local.send(send_request(to="ann@example.com"))
    clock.advance(timedelta(seconds=1))
    second = await local.send(
        send_request(to="bob@example.com", template_id="welcome", data={"name": "Bob"})
    )

    response = await local.handler.list_outbox(pb.ListOutboxRequest(), call("ListOutbox"))

    assert [email.id for email in response.emails] == [second, first]
    newest = response.emails[0]
    assert newest.to == "bob@example.com"
    assert getattr(newest, "from") == DEFAULT_FROM
    assert newest.subject == "Welcome to M3O"
    assert newest.text.startswith("Hi Bob, welcome to M3O!")
    assert newest.template_id == "welcome"
    assert newest.status == "sent"
    assert newest.transport == "outbox"
    assert newest.attempts == 1
    assert newest.time == int(START.timestamp()) + 1
    assert newest.created == newest.time


async def test_list_outbox_filters_by_recipient_and_status_and_limits(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    transport = RecordingTransport(failures=[DeliveryError("refused", permanent=True)])
    world = make_world(sessions, transport, clock)
    failed = await world.send(send_request(to="ann@example.com"))
    for n in range(3):
        clock.advance(timedelta(seconds=1))
        await world.send(send_request(to=f"user{n}@example.com"))
    clock.advance(timedelta(seconds=1))
    latest_to_ann = await world.send(send_request(to="ann@example.com"))

    async def ids(**fields: object) -> list[str]:
        request = pb.ListOutboxRequest(**fields)  # type: ignore[arg-type]
        response = await world.handler.list_outbox(request, call("ListOutbox", SERVICE))
        return [email.id for email in response.emails]

    assert await ids(to=" Ann@Example.com ") == [latest_to_ann, failed]
    assert await ids(status="failed") == [failed]
    assert await ids(to="ann@example.com", status="sent") == [latest_to_ann]
    assert len(await ids(limit=2)) == 2
    assert len(await ids()) == 5
    assert await ids(to="nobody@example.com") == []


async def test_list_outbox_returns_twenty_by_default(local: World, clock: MovableClock) -> None:
    for _ in range(21):
        clock.advance(timedelta(seconds=1))
        await local.send()

    response = await local.handler.list_outbox(pb.ListOutboxRequest(), call("ListOutbox"))

    assert len(response.emails) == 20


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (pb.ListOutboxRequest(limit=-1), "Limit must not be negative"),
        (
            pb.ListOutboxRequest(status="lost"),
            "Unknown status 'lost'; use pending, sent or failed",
        ),
    ],
)
async def test_bad_list_requests_are_refused(
    offline: World, request_: pb.ListOutboxRequest, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await offline.handler.list_outbox(request_, call("ListOutbox"))

    assert raised.value == BadRequest("emails.listoutbox", detail)


async def test_customers_and_anonymous_callers_may_not_list(offline: World) -> None:
    with pytest.raises(Forbidden):
        await offline.handler.list_outbox(pb.ListOutboxRequest(), call("ListOutbox", CUSTOMER))
    with pytest.raises(Unauthorized):
        await offline.handler.list_outbox(pb.ListOutboxRequest(), call("ListOutbox", None))


async def test_the_cli_listing_shows_time_recipient_subject_and_text(local: World) -> None:
    await local.send()

    printed = format_outbox(await list_outbox(local.sessions, limit=5))

    assert "2024-01-01 00:00:00 UTC" in printed
    assert "to ann@example.com" in printed
    assert "Subject: Verify your M3O account email" in printed
    assert f"signup form: {CODE} This code expires in 5 minutes." in printed
    assert format_outbox([]) == "No emails."


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"status": "nope"}, "unknown status 'nope'; use pending, sent or failed"),
    ],
)
async def test_the_cli_listing_refuses_bad_arguments(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await list_outbox(None, **fields)  # type: ignore[arg-type]
