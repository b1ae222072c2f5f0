"""Track and Waitlist."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from m3o.runtime.errors import BadRequest
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.tables import tracking, waitlist
from services.signup.support import START, World, call


async def track(world: World, request: pb.TrackRequest) -> None:
    await world.handler.track(request, call("Track"))


@pytest.mark.parametrize("track_id", ["", "   "])
async def test_track_without_id_is_bad_request(world: World, track_id: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await track(world, pb.TrackRequest(id=track_id, email="ann@example.com"))
    assert caught.value == BadRequest("signup.track", "Missing ID param")


async def test_track_merges_non_empty_fields(world: World) -> None:
    await track(
        world, pb.TrackRequest(id="v1", firstVisit=1000, referrer="https://news.example.com")
    )
    world.clock.advance(timedelta(seconds=5))
    await track(world, pb.TrackRequest(id="v1", email=" Ann@Example.com", firstVerification=1100))
    await track(world, pb.TrackRequest(id="v1", registration=1200, referrer=""))

    async with world.sessions() as session:
        [row] = (await session.execute(select(tracking))).all()
    assert row.id == "v1"
    assert row.email == "ann@example.com"
    assert (row.first_visit, row.first_verification, row.registration) == (1000, 1100, 1200)
    assert row.referrer == "https://news.example.com"
    assert row.created == START
    assert row.updated == START + timedelta(seconds=5)


async def test_track_bad_fields_are_bad_requests(world: World) -> None:
    with pytest.raises(BadRequest):
        await track(world, pb.TrackRequest(id="v1", email="not-an-email"))
    with pytest.raises(BadRequest):
        await track(world, pb.TrackRequest(id="v1", firstVisit=-1))
    with pytest.raises(BadRequest):
        await track(world, pb.TrackRequest(id="v1", referrer="x" * 3000))
    with pytest.raises(BadRequest):
        await track(world, pb.TrackRequest(id="v" * 300))


async def test_waitlist_stores_an_address_once(world: World) -> None:
    await world.handler.waitlist(pb.WaitlistRequest(email="Ann@Example.com"), call("Waitlist"))
    world.clock.advance(timedelta(hours=1))
    await world.handler.waitlist(pb.WaitlistRequest(email="ann@example.com"), call("Waitlist"))
    async with world.sessions() as session:
        rows = (await session.execute(select(waitlist))).all()
    assert [(r.email, r.created) for r in rows] == [("ann@example.com", START)]


async def test_waitlist_missing_email_is_bad_request(world: World) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.waitlist(pb.WaitlistRequest(email=" "), call("Waitlist"))
    assert caught.value == BadRequest("signup.waitlist", "missing email")


@pytest.mark.parametrize("email", ["ann@", "<script>@x.com", '"a"@example.com', "a\x00@x.com"])
async def test_waitlist_invalid_email_is_bad_request_and_stores_nothing(
    world: World, email: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await world.handler.waitlist(pb.WaitlistRequest(email=email), call("Waitlist"))
    assert caught.value.id == "signup.waitlist"
    assert caught.value.detail.startswith("Invalid email: ")
    async with world.sessions() as session:
        assert (await session.execute(select(waitlist))).all() == []
