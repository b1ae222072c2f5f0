"""Redis clients survive an outage: the first call after Redis returns succeeds, a command
whose connection failed is sent once more on a fresh one, a timed-out one is not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from m3o.runtime.counters.redis import redis_counter_store
from m3o.runtime.errors import Unavailable
from m3o.runtime.store.redis import redis_client
from support.throwaway_redis import RedisServer, redis_server


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as started:
        yield started


@pytest.fixture
async def observer(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A second client, to look at and act on the server from outside."""
    client = aioredis.Redis.from_url(server.url(), socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} within {seconds} s")


async def test_first_command_after_a_restart_succeeds(server: RedisServer) -> None:
    client = redis_client(server.url(), timeout=2)
    try:
        assert await client.incr("calls") == 1
        server.restart()  # nothing is sent while Redis is away
        assert await client.incr("calls") == 1  # the restarted Redis is empty
    finally:
        await client.aclose()


async def test_counter_store_first_call_after_a_restart_succeeds(server: RedisServer) -> None:
    store = redis_counter_store(server.url(), timeout=2)
    try:
        assert await store.incr("calls") == 1
        server.stop()
        with pytest.raises(Unavailable):
            await store.incr("calls")
        server.start()
        assert await store.incr("calls") == 1
    finally:
        await store.close()


async def test_counter_store_connections_from_before_an_outage_are_not_used(
    server: RedisServer,
) -> None:
    """Several pooled connections, none used during the outage: every one is replaced."""
    store = redis_counter_store(server.url(), timeout=2)
    try:
        assert await asyncio.gather(*(store.incr(f"k{i}") for i in range(8))) == [1] * 8
        server.restart()
        assert await asyncio.gather(*(store.incr(f"k{i}") for i in range(8))) == [1] * 8
    finally:
        await store.close()


async def test_a_command_whose_connection_breaks_is_sent_once_more(
    server: RedisServer, observer: aioredis.Redis
) -> None:
    client = redis_client(server.url(), timeout=10)
    try:
        await client.client_setname("subject")
        waiting = asyncio.create_task(client.blpop(["queue"], timeout=5))

        async def blocked() -> bool:
            clients = await observer.client_list()
            return any(c.get("cmd") == "blpop" for c in clients)

        await _until(blocked, "the client blocked in BLPOP")
        killed = await observer.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        await _until(blocked, "BLPOP sent again on a new connection")
        await observer.rpush("queue", "job")
        assert await waiting == (b"queue", b"job")
    finally:
        await client.aclose()


async def test_a_command_that_timed_out_is_not_sent_again() -> None:
    """Redis may be running it: sending it again could count it twice."""
    received: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def silent_on_incr(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A Redis that accepts the connection's set-up commands and never answers INCR.
        writers.append(writer)
        while data := await reader.read(65536):
            received.append(data)
            if b"INCR" not in data.upper():
                writer.write(b"+OK\r\n")
                await writer.drain()

    fake = await asyncio.start_server(silent_on_incr, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    client = redis_client(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        with pytest.raises(RedisTimeoutError):
            await client.incr("count")
        assert sum(b"INCR" in data.upper() for data in received) == 1
    finally:
        await client.aclose()
        fake.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await fake.wait_closed()


async def test_commands_carry_every_kind_of_argument_as_redis_py_packs_it(
    server: RedisServer,
) -> None:
    client = redis_client(server.url(), timeout=5)
    values: list[object] = ["plain", "välue ünicode", b"\x00\xffbytes", 12, -3, 1.5, 0.1]
    try:
        for n, value in enumerate(values):
            await client.set(f"k{n}", value)  # type: ignore[arg-type]
        stored = await client.mget([f"k{n}" for n in range(len(values))])
        assert stored == [
            b"plain",
            "välue ünicode".encode(),
            b"\x00\xffbytes",
            b"12",
            b"-3",
            b"1.5",
            b"0.1",
        ]
        assert await client.execute_command("CONFIG GET", "maxmemory") is not None
        await client.set("view", memoryview(b"from a view"))
        assert await client.get("view") == b"from a view"
        for refused in (True, None, object()):
            with pytest.raises(DataError):
                await client.set("refused", refused)  # type: ignore[arg-type]
        assert await client.exists("refused") == 0
    finally:
        await client.aclose()
