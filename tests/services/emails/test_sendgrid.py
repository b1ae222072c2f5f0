"""SendGrid against a fake HTTP API (httpx.MockTransport): requests, statuses, retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from structlog.testing import capture_logs

from m3o.runtime.store import SessionFactory
from m3o.services.emails.addresses import Address
from m3o.services.emails.records import Status
from m3o.services.emails.transport import DeliveryError, OutgoingEmail
from services.emails.support import (
    API_KEY,
    API_URL,
    CODE,
    DEFAULT_FROM,
    FakeSendgrid,
    make_world,
    send_request,
)
from support.services import MovableClock


def outgoing(**fields: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "id": "e-1",
        "sender": Address("noreply@m3o.com", "M3O"),
        "to": Address("ann@example.com"),
        "subject": "Hello",
        "text": "Plain words.",
        "html": "<p>Rich words.</p>",
    }
    values.update(fields)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


async def test_a_rendered_email_is_posted_with_the_key_subject_and_both_bodies() -> None:
    api = FakeSendgrid()

    await api.transport(ip_pool_name="transactional").send(outgoing())

    [request] = api.requests
    assert request.method == "POST"
    assert str(request.url) == f"{API_URL}/v3/mail/send"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert api.bodies() == [
        {
            "personalizations": [{"to": [{"email": "ann@example.com"}]}],
            "from": {"email": "noreply@m3o.com", "name": "M3O"},
            "custom_args": {"email_id": "e-1"},
            "subject": "Hello",
            "content": [
                {"type": "text/plain", "value": "Plain words."},
                {"type": "text/html", "value": "<p>Rich words.</p>"},
            ],
            "ip_pool_name": "transactional",
        }
    ]


async def test_a_dynamic_template_is_posted_with_its_data_and_no_content() -> None:
    api = FakeSendgrid()

    await api.transport().send(
        outgoing(provider_template="d-123", template_data={"code": "X"}, subject="", text="")
    )

    [body] = api.bodies()
    assert body["template_id"] == "d-123"
    assert body["personalizations"] == [
        {"to": [{"email": "ann@example.com"}], "dynamic_template_data": {"code": "X"}}
    ]
    assert "content" not in body
    assert "subject" not in body
    assert "ip_pool_name" not in body


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (413, True), (429, False), (500, False), (503, False)],
)
async def test_a_refusal_is_permanent_unless_it_is_a_5xx_or_a_429(
    status: int, permanent: bool
) -> None:
    api = FakeSendgrid(statuses=[status])

    with pytest.raises(DeliveryError) as raised:
        await api.transport().send(outgoing())

    assert raised.value.permanent is permanent
    assert str(raised.value) == f"SendGrid answered {status}: status {status}"


@pytest.mark.parametrize(
    "error",
    [
        lambda request: httpx.ReadTimeout("slow", request=request),
        lambda request: httpx.ConnectError("refused", request=request),
    ],
    ids=["timeout", "connection"],
)
async def test_timeouts_and_connection_errors_are_transient(
    error: Callable[[httpx.Request], Exception],
) -> None:
    api = FakeSendgrid(fail_with=error)

    with pytest.raises(DeliveryError) as raised:
        await api.transport().send(outgoing())

    assert not raised.value.permanent


async def test_a_503_is_retried_after_the_backoff_then_succeeds(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    api = FakeSendgrid(statuses=[503])
    world = make_world(sessions, api.transport(), clock, sendgrid_templates={})

    email_id = await world.send()
    assert (await world.email(email_id)).status is Status.PENDING
    clock.advance(timedelta(seconds=10))
    await world.courier.deliver_due()

    assert len(api.requests) == 2
    assert api.bodies()[0] == api.bodies()[1]
    stored = await world.email(email_id)
    assert (stored.status, stored.attempts, stored.transport) == (Status.SENT, 2, "sendgrid")


async def test_a_400_is_not_retried_and_the_email_is_failed(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    api = FakeSendgrid(statuses=[400])
    world = make_world(sessions, api.transport(), clock, sendgrid_templates={})

    email_id = await world.send()
    clock.advance(timedelta(hours=1))
    await world.courier.deliver_due()

    assert len(api.requests) == 1
    stored = await world.email(email_id)
    assert (stored.status, stored.last_error) == (
        Status.FAILED,
        "SendGrid answered 400: status 400",
    )


async def test_mapped_templates_go_as_dynamic_templates_with_the_references_names_too(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    api = FakeSendgrid()
    world = make_world(
        sessions, api.transport(), clock, sendgrid_templates={"verification": "d-verify"}
    )

    email_id = await world.send(send_request(data={"code": CODE}))

    [body] = api.bodies()
    assert body["template_id"] == "d-verify"
    assert body["personalizations"] == [
        {
            "to": [{"email": "ann@example.com"}],
            # the reference's verification email called the code "token"
            "dynamic_template_data": {"code": CODE, "token": CODE},
        }
    ]
    assert body["from"] == {"email": "noreply@m3o.com", "name": "M3O"}
    stored = await world.email(email_id)
    assert CODE in stored.text  # rendered here too, for the outbox listing


async def test_any_other_template_id_is_taken_as_a_sendgrid_template(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    api = FakeSendgrid()
    world = make_world(sessions, api.transport(), clock, sendgrid_templates={})

    email_id = await world.send(send_request(template_id="d-newsletter", data={"month": "May"}))

    [body] = api.bodies()
    assert body["template_id"] == "d-newsletter"
    assert body["personalizations"] == [
        {"to": [{"email": "ann@example.com"}], "dynamic_template_data": {"month": "May"}}
    ]
    stored = await world.email(email_id)
    assert (stored.status, stored.sender, stored.text) == (Status.SENT, DEFAULT_FROM, "")


async def test_neither_the_api_key_nor_the_code_reaches_the_logs(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    api = FakeSendgrid(statuses=[401, 503])
    world = make_world(sessions, api.transport(), clock, sendgrid_templates={})

    with capture_logs() as logs:
        await world.send()
        await world.send(send_request(to="bob@example.com"))
        clock.advance(timedelta(minutes=1))
        await world.courier.deliver_due()

    text = repr(logs)
    for secret in (API_KEY, CODE, "ann@example.com", "bob@example.com"):
        assert secret not in text
    events = [entry["event"] for entry in logs]
    assert events.count("emails.failed") == 1
    assert events.count("emails.retry") == 1
    assert events.count("emails.sent") == 1
