"""Clients written for the reference send email as they did: template data as the
reference's ``bytes`` (base64 in JSON, the raw JSON text over gRPC) or as a JSON object,
and a SendGrid dynamic template id, through the HTTP front and over gRPC, to SendGrid."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.gateway import create_app, directory
from m3o.runtime.errors import BadRequest
from m3o.runtime.rpc import Dispatcher
from m3o.runtime.store import SessionFactory
from m3o.services.emails import records
from m3o.services.emails.handler import Emails
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.proto.client import SPEC
from m3o.services.emails.records import Status
from m3o.services.emails.service import definition
from services.emails.support import (
    ADMIN,
    FakeSendgrid,
    RecordingTransport,
    World,
    call,
    make_world,
)
from support.services import (
    AnonymousRefused,
    EveryTokenIs,
    MovableClock,
    NoClients,
    dependencies,
    grpc_channel_to,
    serve,
)

TEMPLATE = "d-0123456789abcdef0123456789abcdef"
DATA = {"name": "Ann", "plan": {"tier": "pro", "seats": 3}}
DATA_TEXT = b'{"name":"Ann","plan":{"tier":"pro","seats":3}}'


def _reference_send_request() -> type[Message]:
    """``emails.SendRequest`` as the reference declares it: ``bytes template_data = 4``."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="reference/emails.proto", package="emails", syntax="proto3"
    )
    message = file.message_type.add(name="SendRequest")
    for name, number, kind in [
        ("from", 1, f.TYPE_STRING),
        ("to", 2, f.TYPE_STRING),
        ("template_id", 3, f.TYPE_STRING),
        ("template_data", 4, f.TYPE_BYTES),
        ("send_at", 5, f.TYPE_INT64),
    ]:
        message.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("emails.SendRequest"))


def _dynamic(api: FakeSendgrid) -> list[tuple[Any, Any]]:
    """The template id and dynamic data of each message SendGrid received."""
    return [
        (body["template_id"], body["personalizations"][0]["dynamic_template_data"])  # type: ignore[index]
        for body in api.bodies()
    ]


@pytest.fixture
def sendgrid() -> FakeSendgrid:
    return FakeSendgrid()


@pytest.fixture
def sending(sessions: SessionFactory, clock: MovableClock, sendgrid: FakeSendgrid) -> World:
    return make_world(sessions, sendgrid.transport(), clock, sendgrid_templates={})


@pytest.fixture
async def http(sending: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = serve(
        SPEC, sending.handler, authenticator=EveryTokenIs(ADMIN), rules=AnonymousRefused()
    )
    app = create_app(directory(SPEC), transport)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": "Bearer admin-token"},
    ) as client:
        yield client


@pytest.mark.parametrize(
    "template_data",
    [
        base64.b64encode(DATA_TEXT).decode(),
        DATA,
        DATA_TEXT.decode(),
    ],
    ids=["reference-base64", "json-object", "json-text"],
)
@pytest.mark.parametrize("name", ["template_data", "templateData"])
async def test_the_http_front_sends_a_sendgrid_template_with_data_in_any_shape(
    http: httpx.AsyncClient,
    sending: World,
    sendgrid: FakeSendgrid,
    template_data: object,
    name: str,
) -> None:
    response = await http.post(
        "/emails/send",
        json={"to": "ann@example.com", "template_id": TEMPLATE, name: template_data},
    )
    await sending.courier.drain()

    assert response.status_code == 200, response.text
    assert _dynamic(sendgrid) == [(TEMPLATE, DATA)]
    assert (await sending.email(response.json()["id"])).status is Status.SENT


@pytest.mark.parametrize(
    ("template_data", "detail"),
    [
        ("not base64!", "Template data must be a JSON object, or its JSON text in base64: "
         "this is neither"),
        (base64.b64encode(b'["a"]').decode(),
         "Template data in base64 must decode to a JSON object"),
        (["a"], "Template data must be a JSON object"),
        (7, "Template data must be a JSON object"),
    ],
    ids=["bad-base64", "base64-of-an-array", "json-array", "json-number"],
)  # fmt: skip
async def test_the_http_front_refuses_template_data_that_is_no_object_with_a_400(
    http: httpx.AsyncClient, sendgrid: FakeSendgrid, template_data: object, detail: str
) -> None:
    response = await http.post(
        "/emails/send",
        json={"to": "ann@example.com", "template_id": TEMPLATE, "template_data": template_data},
    )

    assert response.status_code == 400
    assert response.json() == {
        "id": "emails.send.templatedata",
        "code": 400,
        "detail": detail,
        "status": "Bad Request",
    }
    assert sendgrid.requests == []


async def test_an_object_for_a_plain_string_field_is_still_refused(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/emails/send", json={"to": {"email": "ann@example.com"}, "template_id": TEMPLATE}
    )

    assert response.status_code == 400
    assert response.json()["id"] == "emails.send"


@pytest.fixture
async def grpc_channel(sending: World) -> AsyncIterator[grpc.aio.Channel]:
    dispatcher = Dispatcher(
        SPEC, sending.handler, authenticator=EveryTokenIs(ADMIN), rules=AnonymousRefused()
    )
    async with grpc_channel_to(dispatcher) as channel:
        yield channel


async def test_a_reference_grpc_client_sends_its_bytes_template_data_to_sendgrid(
    grpc_channel: grpc.aio.Channel, sending: World, sendgrid: FakeSendgrid
) -> None:
    reference = _reference_send_request()
    request: Any = reference(to="ann@example.com", template_id=TEMPLATE, template_data=DATA_TEXT)
    send = grpc_channel.unary_unary(
        "/emails.Emails/Send",
        request_serializer=reference.SerializeToString,
        response_deserializer=pb.SendResponse.FromString,
    )

    response = await send(request, metadata=(("authorization", "Bearer admin-token"),), timeout=30)
    await sending.courier.drain()

    assert _dynamic(sendgrid) == [(TEMPLATE, DATA)]
    assert (await sending.email(response.id)).status is Status.SENT


async def test_the_outbox_records_a_sendgrid_template_id_and_its_data(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    parts = await definition.build(
        dependencies("emails", engine, sessions, clients=NoClients("emails"))
    )
    handler = parts.handlers[0].implementation
    assert isinstance(handler, Emails)
    data = base64.b64encode(DATA_TEXT).decode()

    sent = await handler.send(
        pb.SendRequest(to="ann@example.com", template_id=TEMPLATE, template_data=data),
        call("Send"),
    )
    with pytest.raises(BadRequest) as raised:
        await handler.send(
            pb.SendRequest(to="ann@example.com", template_id="verificaton"), call("Send")
        )
    for stop in parts.on_stop:
        await stop()

    assert raised.value.detail.startswith("Unknown template 'verificaton'")
    [email] = (await handler.list_outbox(pb.ListOutboxRequest(), call("ListOutbox"))).emails
    assert (email.id, email.template_id, email.status, email.transport) == (
        sent.id,
        TEMPLATE,
        "sent",
        "outbox",
    )
    async with sessions() as session:
        stored = await records.find(session, sent.id)
    assert stored is not None
    assert dict(stored.template_data) == DATA


async def test_smtp_refuses_a_sendgrid_template_id(
    sessions: SessionFactory, clock: MovableClock
) -> None:
    world = make_world(sessions, RecordingTransport(), clock)

    with pytest.raises(BadRequest) as raised:
        await world.handler.send(
            pb.SendRequest(to="ann@example.com", template_id=TEMPLATE), call("Send")
        )

    assert raised.value.detail.startswith(f"Unknown template {TEMPLATE!r}")
