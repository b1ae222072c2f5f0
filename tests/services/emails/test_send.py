"""Send: who may call it, what it refuses, what it stores and sends, idempotency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, Internal, Unauthorized
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.records import Status
from m3o.services.emails.transport import DeliveryError
from services.emails.support import (
    ADMIN,
    CODE,
    CUSTOMER,
    DEFAULT_FROM,
    SERVICE,
    START,
    RecordingTransport,
    World,
    call,
    send_request,
)


@pytest.mark.parametrize("account", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_admins_and_services_may_send(
    world: World, transport: RecordingTransport, account: Account
) -> None:
    response = await world.handler.send(send_request(), call("Send", account))
    await world.courier.drain()

    assert response.id
    [sent] = transport.sent
    assert sent.id == response.id


async def test_a_customer_may_not_send(offline: World, transport: RecordingTransport) -> None:
    with pytest.raises(Forbidden) as raised:
        await offline.handler.send(send_request(), call("Send", CUSTOMER))

    assert raised.value.id == "emails.send"
    assert transport.attempts == 0


async def test_an_anonymous_caller_may_not_send(offline: World) -> None:
    with pytest.raises(Unauthorized):
        await offline.handler.send(send_request(), call("Send", None))


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (send_request(to=""), BadRequest("emails.send", "To is required")),
        (send_request(to="   "), BadRequest("emails.send", "To is required")),
        (send_request(to="ann"), BadRequest("emails.send", "Invalid to address")),
        (send_request(to="ann@example"), BadRequest("emails.send", "Invalid to address")),
        (
            send_request(to="a@example.com, b@example.com"),
            BadRequest("emails.send", "Invalid to address"),
        ),
        (
            send_request(to="ann@example.com\r\nBcc: eve@example.com"),
            BadRequest("emails.send", "Invalid to address"),
        ),
        (send_request(template_id=""), BadRequest("emails.send", "Template id is required")),
        (
            send_request(sender="not an address"),
            BadRequest("emails.send", "Invalid from address"),
        ),
        (
            send_request(idempotency_key="k" * 201),
            BadRequest("emails.send", "Idempotency key is longer than 200"),
        ),
        (
            send_request(send_at=10**15),
            BadRequest("emails.send", "send_at is out of range"),
        ),
        (
            send_request(template_id="newsletter"),
            BadRequest(
                "emails.send",
                "Unknown template 'newsletter'; "
                "use verification, recovery, welcome, account_exists",
            ),
        ),
        (
            send_request(data={}),
            BadRequest("emails.send", "Template verification needs the value 'code'"),
        ),
        (
            send_request(template_id="recovery", data={"reset_url": "https://x"}),
            BadRequest("emails.send", "Template recovery needs the value 'token'"),
        ),
    ],
    ids=[
        "no-to",
        "blank-to",
        "to-without-domain",
        "to-without-dotted-domain",
        "two-recipients",
        "header-injection",
        "no-template",
        "bad-from",
        "long-key",
        "send-at-out-of-range",
        "unknown-template",
        "missing-code",
        "missing-token",
    ],
)
async def test_bad_requests_are_refused_before_anything_is_stored(
    offline: World, transport: RecordingTransport, request_: pb.SendRequest, error: BadRequest
) -> None:
    with pytest.raises(BadRequest) as raised:
        await offline.handler.send(request_, call("Send"))

    assert raised.value == error
    assert transport.attempts == 0


@pytest.mark.parametrize(
    "raw", ["[1, 2]", '"text"', "42", "null", "{not json", '{"code": '], ids=repr
)
async def test_template_data_that_is_not_a_json_object_is_refused(
    offline: World, transport: RecordingTransport, raw: str
) -> None:
    request = pb.SendRequest(to="ann@example.com", template_id="welcome", template_data=raw)

    with pytest.raises(BadRequest) as raised:
        await offline.handler.send(request, call("Send"))

    assert raised.value == BadRequest(
        "emails.send.templatedata", "Template data must be a JSON object"
    )
    assert transport.attempts == 0


async def test_template_data_may_be_omitted_when_the_template_needs_none(
    world: World, transport: RecordingTransport
) -> None:
    await world.send(pb.SendRequest(to="ann@example.com", template_id="welcome"))

    [sent] = transport.sent
    assert sent.subject == "Welcome to M3O"


async def test_an_email_is_stored_then_sent_from_the_configured_sender(
    world: World, transport: RecordingTransport
) -> None:
    email_id = await world.send(send_request(to="  Ann@Example.COM "))

    [sent] = transport.sent
    assert sent.to.email == "ann@example.com"
    assert str(sent.sender) == DEFAULT_FROM
    assert sent.subject == "Verify your M3O account email"
    assert CODE in sent.text
    assert CODE in sent.html
    stored = await world.email(email_id)
    assert stored.status is Status.SENT
    assert stored.recipient == "ann@example.com"
    assert stored.sender == DEFAULT_FROM
    assert stored.attempts == 1
    assert stored.transport == "recording"
    assert stored.created == START
    assert stored.sent_at == START


async def test_the_request_may_name_its_sender(world: World, transport: RecordingTransport) -> None:
    await world.send(send_request(sender="Support <Help@Example.com>"))

    [sent] = transport.sent
    assert sent.sender.email == "help@example.com"
    assert sent.sender.name == "Support"


async def test_a_send_at_in_the_past_sends_now(world: World, transport: RecordingTransport) -> None:
    email_id = await world.send(send_request(send_at=int(START.timestamp()) - 3600))

    assert len(transport.sent) == 1
    assert (await world.email(email_id)).send_at == START


async def test_a_transport_failure_does_not_fail_send(world: World) -> None:
    failing = RecordingTransport()
    failing.failures.append(DeliveryError("connection refused"))
    world.courier._transport = failing  # the handler shares this courier

    email_id = await world.send()

    stored = await world.email(email_id)
    assert stored.status is Status.PENDING
    assert stored.last_error == "connection refused"


async def test_send_returns_without_waiting_for_the_mail_server(
    world: World, transport: RecordingTransport
) -> None:
    transport.hang = asyncio.Event()

    response = await world.handler.send(send_request(), call("Send"))
    await transport.entered.wait()

    assert (await world.email(response.id)).status is Status.PENDING
    transport.hang.set()
    await world.courier.drain()
    assert (await world.email(response.id)).status is Status.SENT


async def test_a_repeated_idempotency_key_returns_the_first_email_and_sends_nothing(
    world: World, transport: RecordingTransport
) -> None:
    first = await world.send(send_request(idempotency_key="welcome:c1"))
    again = await world.send(send_request(idempotency_key="welcome:c1"))
    other = await world.send(send_request(idempotency_key="welcome:c2"))

    assert again == first
    assert other != first
    assert [sent.id for sent in transport.sent] == [first, other]
    assert len(await world.emails()) == 2


async def test_concurrent_sends_with_one_key_store_and_send_one_email(
    world: World, transport: RecordingTransport
) -> None:
    ids = await asyncio.gather(*(world.send(send_request(idempotency_key="k1")) for _ in range(4)))

    assert len(set(ids)) == 1
    assert len(await world.emails()) == 1
    assert len(transport.sent) == 1


async def test_send_stores_the_rendered_email_with_its_template(world: World) -> None:
    email_id = await world.send(
        send_request(template_id="recovery", data={"token": "tok-1", "reset_url": "https://r"})
    )

    stored = await world.email(email_id)
    assert stored.template_id == "recovery"
    assert stored.subject == "Reset your M3O password"
    assert "https://r" in stored.text
    assert stored.template_data == {}  # kept only for SendGrid's own templates


async def test_a_storage_failure_is_internal_and_logs_no_body(
    engine: AsyncEngine, world: World, transport: RecordingTransport
) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE emails_emails"))

    with capture_logs() as logs, pytest.raises(Internal) as raised:
        await world.handler.send(send_request(), call("Send"))

    assert raised.value == Internal("emails.send", "Internal server error")
    assert [entry["event"] for entry in logs] == ["emails.store_failed"]
    assert CODE not in repr(logs)
    assert transport.attempts == 0
