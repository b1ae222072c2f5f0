"""A handler that cannot reach Redis, the database (or another server) answers Unavailable,
not Internal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from m3o.runtime.auth import CallContext
from m3o.runtime.errors import Internal, Unavailable
from m3o.runtime.rpc import Dispatcher, GrpcTransport, InProcessTransport, Transport
from m3o.runtime.store import create_engine
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto import helloworld_pb2 as pb
from m3o.services.helloworld.proto.client import SPEC, HelloworldClient
from support.backends import postgres_url
from support.database_failures import postgres_out_of_slots, raised, sqlite_locked
from support.services import grpc_channel_to

_FAILURES: dict[str, Exception] = {
    "redis-down": RedisConnectionError("Error 111 connecting to redis:6379. Connection refused."),
    "redis-slow": RedisTimeoutError("Timeout reading from redis:6379"),
    "socket-refused": ConnectionRefusedError(111, "Connection refused"),
    "bug": ValueError("a bug"),
}


@pytest.fixture
async def database_failures(tmp_path: Path) -> AsyncIterator[None]:
    """Real database failures among the handler's: out of room (PostgreSQL's connection
    slots all taken, SQLite locked) and wrong work (a table that does not exist)."""
    made = {
        "postgres-full": await raised(postgres_out_of_slots(), "SELECT 1"),
        "sqlite-locked": await sqlite_locked(tmp_path),
        "postgres-bug": await raised(
            create_engine(postgres_url(), pool_size=1), "SELECT * FROM no_such_table"
        ),
    }
    _FAILURES.update(made)
    yield
    for name in made:
        del _FAILURES[name]


class Failing(Helloworld):
    async def call(self, request: pb.CallRequest, ctx: CallContext) -> pb.CallResponse:
        raise _FAILURES[request.name]


@pytest.fixture(params=["inprocess", "grpc"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    dispatcher = Dispatcher(SPEC, Failing(), authenticator=None, rules=None)
    if request.param == "inprocess":
        local = InProcessTransport()
        local.register(dispatcher)
        yield local
        return
    async with grpc_channel_to(dispatcher) as channel:
        yield GrpcTransport(channel)


@pytest.mark.parametrize(
    "failure", ["redis-down", "redis-slow", "socket-refused", "postgres-full", "sqlite-locked"]
)
@pytest.mark.usefixtures("database_failures")
async def test_unreachable_server_is_unavailable_with_the_cause_logged(
    transport: Transport, failure: str
) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(Unavailable) as caught:
        await HelloworldClient(transport).call(pb.CallRequest(name=failure))
    assert caught.value.to_dict() == {
        "id": "helloworld.call",
        "code": 503,
        "detail": "Service unavailable",
        "status": "Service Unavailable",
    }
    [logged] = [entry for entry in logs if entry["event"] == "rpc.unavailable"]
    assert logged["endpoint"] == "helloworld.call"
    assert logged["exc_info"] is _FAILURES[failure]


@pytest.mark.parametrize("failure", ["bug", "postgres-bug"])
@pytest.mark.usefixtures("database_failures")
async def test_other_failures_stay_internal(transport: Transport, failure: str) -> None:
    with pytest.raises(Internal) as caught:
        await HelloworldClient(transport).call(pb.CallRequest(name=failure))
    assert caught.value == Internal("helloworld.call", "Internal server error")
