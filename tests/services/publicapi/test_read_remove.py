"""Get, List and Remove: lookups, who sees upstreams, removal events and version."""

from __future__ import annotations

import pytest

from m3o.events.publicapi import EventType
from m3o.runtime.errors import BadRequest, Forbidden, NotFound, Unauthorized
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from services.publicapi.support import CUSTOMER, SERVICE, World, api, call


@pytest.mark.parametrize(
    "request_", [pb.GetRequest(), pb.GetRequest(name="  ")], ids=["empty", "blank-name"]
)
async def test_get_without_id_or_name_is_bad_request(world: World, request_: pb.GetRequest) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.get(request_, call("Get", None))
    assert caught.value.to_dict() == {
        "id": "publicapi.get",
        "code": 400,
        "detail": "ID or name must be specified",
        "status": "Bad Request",
    }


@pytest.mark.parametrize(
    "request_", [pb.GetRequest(id="nope"), pb.GetRequest(name="nope")], ids=["id", "name"]
)
async def test_get_of_an_unknown_api_is_not_found(world: World, request_: pb.GetRequest) -> None:
    await world.publish()
    with pytest.raises(NotFound) as caught:
        await world.handler.get(request_, call("Get", None))
    assert caught.value == NotFound("publicapi.get", "API not found")


async def test_get_finds_by_id_or_by_name_in_any_case(world: World) -> None:
    first = await world.publish()
    await world.publish(api("other"))
    by_id = await world.handler.get(pb.GetRequest(id=first.id, name="other"), call("Get"))
    by_name = await world.handler.get(pb.GetRequest(name=" HelloWorld "), call("Get"))
    assert by_id.api == by_name.api == first


@pytest.mark.parametrize("account", [None, CUSTOMER], ids=["anonymous", "customer"])
async def test_get_and_list_hide_upstream_and_descriptors_from_the_public(
    world: World, account: object
) -> None:
    first = await world.publish()
    ctx = call("Get", account)  # type: ignore[arg-type]
    got = (await world.handler.get(pb.GetRequest(id=first.id), ctx)).api
    listed = (await world.handler.list(pb.ListRequest(), ctx)).apis
    for seen in (got, *listed):
        assert not seen.HasField("upstream")
        assert seen.descriptors == b""
        assert seen.open_api_json == first.open_api_json
        assert list(seen.endpoints) == list(first.endpoints)


async def test_get_and_list_show_upstream_and_descriptors_to_services(world: World) -> None:
    first = await world.publish()
    got = (await world.handler.get(pb.GetRequest(id=first.id), call("Get", SERVICE))).api
    listed = (await world.handler.list(pb.ListRequest(), call("List", SERVICE))).apis
    assert got == first
    assert list(listed) == [first]


async def test_list_returns_every_entry_sorted_by_name(world: World) -> None:
    assert list((await world.handler.list(pb.ListRequest(), call("List", None))).apis) == []
    for name in ("zeta", "alpha", "mid"):
        await world.publish(api(name))
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert [a.name for a in listed.apis] == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize("by", ["id", "name"])
async def test_remove_deletes_the_entry_and_publishes_api_disable(world: World, by: str) -> None:
    first = await world.publish()
    kept = await world.publish(api("other"))
    request = pb.RemoveRequest(id=first.id) if by == "id" else pb.RemoveRequest(name="HelloWorld")
    await world.handler.remove(request, call("Remove"))

    with pytest.raises(NotFound):
        await world.handler.get(pb.GetRequest(id=first.id), call("Get"))
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert list(listed.apis) == [kept]
    assert world.events() == [(EventType.EventTypeAPIDisable, "helloworld")]
    world.assert_all_in_transaction()
    assert await world.version() == 3


async def test_remove_without_id_or_name_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.remove(pb.RemoveRequest(), call("Remove"))
    assert caught.value == BadRequest("publicapi.remove", "ID or name must be specified")


async def test_remove_of_an_unknown_api_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        await world.handler.remove(pb.RemoveRequest(name="nope"), call("Remove"))
    assert caught.value == NotFound("publicapi.remove", "API not found")
    assert world.events() == []
    assert await world.version() == 0


async def test_remove_needs_an_admin(world: World) -> None:
    first = await world.publish()
    with pytest.raises(Forbidden):
        await world.handler.remove(pb.RemoveRequest(id=first.id), call("Remove", CUSTOMER))
    with pytest.raises(Unauthorized):
        await world.handler.remove(pb.RemoveRequest(id=first.id), call("Remove", None))
    assert world.events() == []


async def test_list_leaves_out_documents_or_descriptors_when_asked(world: World) -> None:
    first = await world.publish(api(examples_json='{"call": []}', postman_json='{"info": {}}'))
    lean = (await world.handler.list(pb.ListRequest(omit_documents=True), call("List"))).apis[0]
    assert (lean.open_api_json, lean.examples_json, lean.postman_json) == ("", "", "")
    assert lean.descriptors == first.descriptors
    light = (await world.handler.list(pb.ListRequest(omit_descriptors=True), call("List"))).apis[0]
    assert light.descriptors == b""
    assert list(light.endpoints) == list(first.endpoints)
    assert (light.open_api_json, light.examples_json) == (first.open_api_json, '{"call": []}')
