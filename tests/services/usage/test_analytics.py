"""SaveEvent and ListEvents: custom analytics events, for admins and services."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Conflict, Forbidden, Unauthorized
from m3o.services.usage.proto import usage_pb2 as pb
from services.usage.support import ADMIN, SERVICE, START, World, call, customer


def struct(**fields: object) -> Struct:
    made = Struct()
    made.update(fields)
    return made


async def save(world: World, table: str, event_id: str = "", **fields: object) -> str:
    request = pb.SaveEventRequest(event=pb.Event(id=event_id, table=table, record=struct(**fields)))
    response = await world.handler.save_event(request, call("SaveEvent", SERVICE))
    return response.id


async def test_saved_events_are_listed_newest_first_with_id_and_time(sql_world: World) -> None:
    await save(sql_world, "api-calls", "first", api="db", count=2)
    sql_world.clock.advance(timedelta(seconds=5))
    generated = await save(sql_world, "api-calls", api="helloworld")
    await save(sql_world, "api-visits", "other-table", api="db")

    listed = await sql_world.handler.list_events(
        pb.ListEventsRequest(table="api-calls"), call("ListEvents", ADMIN)
    )
    assert [e.id for e in listed.events] == [generated, "first"]
    assert str(uuid.UUID(generated)) == generated
    assert all(e.table == "api-calls" for e in listed.events)
    assert json_format.MessageToDict(listed.events[1].record) == {
        "api": "db",
        "count": 2,
        "id": "first",
        "createdAt": int(START.timestamp()),
    }


async def test_events_saved_in_one_second_list_newest_first(sql_world: World) -> None:
    for i in range(3):
        await save(sql_world, "api-calls", f"e{i}")
    listed = await sql_world.handler.list_events(
        pb.ListEventsRequest(table="api-calls", limit=2), call("ListEvents", ADMIN)
    )
    assert [e.id for e in listed.events] == ["e2", "e1"]


async def test_list_defaults_to_twenty(sql_world: World) -> None:
    for i in range(25):
        await save(sql_world, "api-calls", f"e{i}")
    listed = await sql_world.handler.list_events(
        pb.ListEventsRequest(table="api-calls"), call("ListEvents", ADMIN)
    )
    assert len(listed.events) == 20
    assert listed.events[0].id == "e24"


async def test_an_id_is_unique_in_its_table(sql_world: World) -> None:
    await save(sql_world, "api-calls", "same")
    with pytest.raises(Conflict) as raised:
        await save(sql_world, "api-calls", "same")
    assert raised.value == Conflict(
        "usage.saveevent.exists", "An event with this id exists in the table"
    )
    await save(sql_world, "api-visits", "same")  # another table is fine


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (pb.SaveEventRequest(), "Missing event"),
        (pb.SaveEventRequest(event=pb.Event(id="x")), "Missing table"),
        (
            pb.SaveEventRequest(event=pb.Event(table="api calls; drop")),
            "Invalid table: letters, digits, - and _ only, at most 64",
        ),
        (
            pb.SaveEventRequest(event=pb.Event(table="t", id="x" * 256)),
            "id is longer than 255 characters",
        ),
        (
            pb.SaveEventRequest(event=pb.Event(table="t", record=struct(blob="x" * 70_000))),
            "record is larger than 65536 bytes",
        ),
    ],
)
async def test_save_refuses_bad_events(
    sql_world: World, request_: pb.SaveEventRequest, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await sql_world.handler.save_event(request_, call("SaveEvent", ADMIN))
    assert raised.value == BadRequest("usage.saveevent", detail)


@pytest.mark.parametrize(
    ("request_", "detail"),
    [
        (pb.ListEventsRequest(), "Missing table"),
        (pb.ListEventsRequest(table="t", limit=-1), "limit must be between 0 and 1000"),
        (pb.ListEventsRequest(table="t", limit=1001), "limit must be between 0 and 1000"),
    ],
)
async def test_list_refuses_bad_requests(
    sql_world: World, request_: pb.ListEventsRequest, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await sql_world.handler.list_events(request_, call("ListEvents", ADMIN))
    assert raised.value == BadRequest("usage.listevents", detail)


@pytest.mark.parametrize(
    ("account", "error"), [(None, Unauthorized), (customer("proj-1"), Forbidden)]
)
async def test_events_are_for_admins_and_services(
    sql_world: World, account: Account | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await sql_world.handler.save_event(
            pb.SaveEventRequest(event=pb.Event(table="t")), call("SaveEvent", account)
        )
    with pytest.raises(error):
        await sql_world.handler.list_events(
            pb.ListEventsRequest(table="t"), call("ListEvents", account)
        )
