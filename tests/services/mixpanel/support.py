"""Helpers of the mixpanel tests: a local fake of Mixpanel's import API, deliveries of
customers and requests events, and the forwarder under test."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from m3o.events import customers as customers_events
from m3o.events import requests as requests_events
from m3o.runtime.events import Delivery, event_type_name
from m3o.runtime.outbound import Retries
from m3o.runtime.store import SessionFactory
from m3o.services.mixpanel.consumers import Forwarder
from m3o.services.mixpanel.importer import Importer, MixpanelImporter, MixpanelSettings
from m3o.services.mixpanel.owners import ProjectOwners
from m3o.services.mixpanel.records import IgnoredCustomers
from m3o.services.projects.proto.fakes import FakeProjectsClient

PROJECT = "proj-123"
USER = "svc-user"
SECRET = "svc-secret"
WHEN = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
FAST = Retries(
    attempts=3, first_delay=timedelta(milliseconds=1), max_delay=timedelta(milliseconds=5)
)


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    auth: tuple[str, str]
    content_type: str
    events: list[dict[str, Any]]


@dataclass
class MixpanelFake:
    """Records every import; answers each with the next of ``answers`` (status), then
    Mixpanel's 200. ``delay`` seconds before answering (a slow server)."""

    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0

    async def endpoint(self, request: Request) -> JSONResponse:
        user, _, password = (
            base64.b64decode(request.headers.get("authorization", "Basic ")[6:])
            .decode()
            .partition(":")
        )
        events = orjson.loads(await request.body())
        self.received.append(
            Received(
                request.url.path,
                dict(request.query_params),
                (user, password),
                request.headers.get("content-type", ""),
                events,
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answers:
            status = self.answers.pop(0)
            return JSONResponse({"code": status, "error": "scripted"}, status_code=status)
        return JSONResponse({"code": 200, "num_records_imported": len(events), "status": "OK"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/import", self.endpoint, methods=["POST"])])

    def events(self) -> list[dict[str, Any]]:
        return [e for r in self.received for e in r.events]


def importer(url: str, timeout: float = 5.0) -> MixpanelImporter:
    return MixpanelImporter(
        MixpanelSettings(
            api_url=url,
            project=PROJECT,
            user=USER,
            secret=SECRET,
            timeout=timedelta(seconds=timeout),
            retries=FAST,
        )
    )


def customer_delivery(
    kind: int, customer_id: str, email: str, event_id: str | None = None
) -> Delivery:
    event = customers_events.Event(
        type=kind,  # type: ignore[arg-type]
        customer=customers_events.events_pb2.Customer(id=customer_id, email=email),
    )
    return Delivery(
        id=event_id or uuid4().hex,
        topic=customers_events.TOPIC,
        type_name=event_type_name(event),
        time=WHEN,
        payload=event.SerializeToString(),
    )


def request_delivery(project_id: str, event_id: str | None = None) -> Delivery:
    event = requests_events.Event(
        type=requests_events.EventType.EventTypeRequest,
        request=requests_events.Request(
            user_id=project_id, project_id=project_id, api_name="helloworld", status_code=200
        ),
    )
    return Delivery(
        id=event_id or uuid4().hex,
        topic=requests_events.TOPIC,
        type_name=event_type_name(event),
        time=WHEN,
        payload=event.SerializeToString(),
    )


@dataclass
class World:
    forwarder: Forwarder
    projects: FakeProjectsClient
    ignored: IgnoredCustomers


def make_world(
    sessions: SessionFactory,
    sink: Importer,
    *,
    ignore_list: list[str] | None = None,
    batch_size: int = 2000,
    linger: timedelta = timedelta(milliseconds=50),
) -> World:
    projects = FakeProjectsClient()
    ignored = IgnoredCustomers(sessions=sessions, clock=lambda: WHEN)
    forwarder = Forwarder(
        importer=sink,
        ignored=ignored,
        owners=ProjectOwners(projects=projects),
        ignore_list=ignore_list or [],
        batch_size=batch_size,
        linger=linger,
    )
    return World(forwarder, projects, ignored)
