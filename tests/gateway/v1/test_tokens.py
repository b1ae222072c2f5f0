"""Upstream tokens: granted by auth per key, reused until near expiry."""

from __future__ import annotations

import time

import pytest

from m3o.gateway.v1.tokens import GrantTokens
from m3o.runtime.errors import NotFound, Unavailable
from m3o.services.auth.proto import auth_pb2 as auth_pb
from m3o.services.auth.proto.fakes import FakeAuthClient


def _granted(token: str, lifetime: float = 900) -> auth_pb.TokenResponse:
    return auth_pb.TokenResponse(
        token=auth_pb.Token(access_token=token, expiry=int(time.time() + lifetime))
    )


async def test_a_token_is_granted_once_per_key_and_reused() -> None:
    auth = FakeAuthClient()
    auth.grant.returns(_granted("jwt-1"))
    tokens = GrantTokens(auth)
    assert [await tokens.token("key-1") for _ in range(3)] == ["jwt-1"] * 3
    assert auth.grant.call_count == 1
    request = auth.grant.args_for_call(0)
    assert (request.id, request.token_expiry) == ("key-1", 900)


async def test_each_key_has_its_own_token() -> None:
    auth = FakeAuthClient()
    auth.grant.returns_once(_granted("a"), _granted("b"))
    tokens = GrantTokens(auth)
    assert (await tokens.token("key-a"), await tokens.token("key-b")) == ("a", "b")


async def test_an_expired_token_is_granted_again() -> None:
    auth = FakeAuthClient()
    auth.grant.returns_once(_granted("old", lifetime=-1), _granted("new"))
    tokens = GrantTokens(auth)
    assert await tokens.token("key-1") == "old"
    assert await tokens.token("key-1") == "new"


async def test_no_token_to_be_had_is_unavailable() -> None:
    auth = FakeAuthClient()
    auth.grant.raises(NotFound("auth.grant", "Account not found"))
    with pytest.raises(Unavailable) as raised:
        await GrantTokens(auth).token("key-1")
    assert raised.value.id == "v1"


async def test_least_recently_used_keys_are_forgotten_past_the_limit() -> None:
    auth = FakeAuthClient()
    auth.grant.returns(_granted("t"))
    tokens = GrantTokens(auth, max_keys=2)
    for key in ("a", "b", "a", "c", "a"):
        await tokens.token(key)
    assert [r.id for r in auth.grant.calls] == ["a", "b", "c"]
