"""The service definition: the transport the config chooses, served, with its schedule."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.config import ConfigError, build_config
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.emails.handler import Emails
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.proto.client import SPEC, EmailsClient
from m3o.services.emails.sendgrid import SendgridTransport
from m3o.services.emails.service import POLL_INTERVAL, definition, make_transport
from m3o.services.emails.smtp import SmtpTransport
from m3o.services.emails.tables import metadata
from m3o.services.emails.transport import LocalOutbox
from services.emails.support import ADMIN, CODE, call, send_request
from support.services import EveryTokenIs, NoClients, dependencies, serve


async def test_the_served_service_records_emails_in_the_local_outbox_by_default(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "emails"
    assert definition.metadata is metadata
    assert definition.specs == (SPEC,)
    deps = dependencies("emails", engine, sessions, clients=NoClients("emails"))
    parts = await definition.build(deps)
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Emails)
    [cron] = parts.crons
    assert (cron.name, cron.every, cron.at_start) == ("deliver", POLL_INTERVAL, True)

    local = serve(SPEC, handler.implementation, authenticator=EveryTokenIs(ADMIN))
    emails = EmailsClient(local, StaticToken("admin-token"))
    sent = await emails.send(send_request())
    for stop in parts.on_stop:
        await stop()  # a stopping service lets the attempt it started finish
    await cron.run()  # nothing left to do: it was sent
    listed = await emails.list_outbox(pb.ListOutboxRequest())

    [email] = listed.emails
    assert email.id == sent.id
    assert email.transport == "outbox"
    assert getattr(email, "from") == "M3O <noreply@m3o.com>"
    assert email.status == "sent"
    assert CODE in email.text


@pytest.mark.parametrize(
    ("section", "kind"),
    [
        ({}, LocalOutbox),
        ({"enabled": False, "transport": "sendgrid"}, LocalOutbox),
        ({"enabled": True}, SmtpTransport),
        (
            {"enabled": True, "transport": "sendgrid", "sendgrid": {"api_key": "k"}},
            SendgridTransport,
        ),
        # the reference's section: SendGrid was its only transport, it had no such key
        ({"enabled": True, "sendgrid": {"api_key": "k"}}, SendgridTransport),
        ({"enabled": True, "transport": "smtp", "sendgrid": {"api_key": "k"}}, SmtpTransport),
    ],
    ids=["default", "disabled", "smtp", "sendgrid", "reference-sendgrid", "smtp-chosen"],
)
async def test_the_config_chooses_the_transport(section: dict[str, Any], kind: type) -> None:
    transport = make_transport(build_config({"emails": section}, {}))

    assert isinstance(transport, kind)
    await transport.close()


def test_sendgrid_without_an_api_key_fails_naming_the_key() -> None:
    config = build_config({"emails": {"enabled": True, "transport": "sendgrid"}}, {})

    with pytest.raises(ConfigError) as raised:
        make_transport(config)

    assert raised.value.path == "emails.sendgrid.api_key"


async def test_the_configured_sender_is_the_default_from(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    document = {"emails": {"email_from": "Team <team@example.com>"}}
    deps = dependencies("emails", engine, sessions, document, clients=NoClients("emails"))
    parts = await definition.build(deps)
    handler = parts.handlers[0].implementation
    assert isinstance(handler, Emails)

    await handler.send(send_request(), call("Send"))
    for stop in parts.on_stop:
        await stop()
    listed = await handler.list_outbox(pb.ListOutboxRequest(), call("ListOutbox"))

    assert getattr(listed.emails[0], "from") == "Team <team@example.com>"
