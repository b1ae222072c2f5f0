"""Prices and free quotas are bounded (m3o.runtime.money) at Publish and at Update, so no
price the gateway charges can overflow a balance or lose precision in the admission
script."""

from __future__ import annotations

import pytest

from m3o.runtime.errors import BadRequest
from m3o.runtime.money import MAX_FREE_QUOTA, MAX_PRICE
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from services.publicapi.support import World, api, call

HUGE = 2**63 - 1


async def test_the_largest_price_and_quota_are_published(world: World) -> None:
    published = await world.publish(
        api(pricing={"Helloworld.Call": MAX_PRICE}, quotas={"Helloworld.Call": MAX_FREE_QUOTA})
    )
    assert dict(published.pricing) == {"Helloworld.Call": MAX_PRICE}
    assert dict(published.quotas) == {"Helloworld.Call": MAX_FREE_QUOTA}


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        (
            "pricing",
            MAX_PRICE + 1,
            "pricing of Helloworld.Call must be at most 10000000000 ($10,000)",
        ),
        ("pricing", HUGE, "pricing of Helloworld.Call must be at most 10000000000 ($10,000)"),
        ("quotas", MAX_FREE_QUOTA + 1, "quotas of Helloworld.Call must be at most 1000000000"),
        ("quotas", HUGE, "quotas of Helloworld.Call must be at most 1000000000"),
    ],
)
async def test_publish_above_the_maximum_is_bad_request_and_stores_nothing(
    world: World, field: str, value: int, detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        prices = {"Helloworld.Call": value}
        await world.publish(api(pricing=prices) if field == "pricing" else api(quotas=prices))

    assert caught.value == BadRequest("publicapi.publish", detail)
    listed = await world.handler.list(pb.ListRequest(), call("List"))
    assert list(listed.apis) == []
    assert world.events() == []


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            pb.PublicAPI(pricing={"Helloworld.Call": HUGE}),
            "pricing of Helloworld.Call must be at most 10000000000 ($10,000)",
        ),
        (
            pb.PublicAPI(quotas={"Helloworld.Call": HUGE}),
            "quotas of Helloworld.Call must be at most 1000000000",
        ),
    ],
)
async def test_update_above_the_maximum_is_bad_request_and_changes_nothing(
    world: World, change: pb.PublicAPI, detail: str
) -> None:
    first = await world.publish(api(pricing={"Helloworld.Call": 1}, quotas={"Helloworld.Call": 5}))
    published = len(world.events())
    change.id = first.id

    with pytest.raises(BadRequest) as caught:
        await world.handler.update(pb.UpdateRequest(api=change), call("Update"))

    assert caught.value == BadRequest("publicapi.update", detail)
    got = await world.handler.get(pb.GetRequest(id=first.id), call("Get"))
    assert dict(got.api.pricing) == {"Helloworld.Call": 1}
    assert dict(got.api.quotas) == {"Helloworld.Call": 5}
    assert len(world.events()) == published
