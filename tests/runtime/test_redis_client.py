"""Redis clients survive an outage: the first call after Redis returns succeeds, a command
whose connection failed is sent once more on a fresh one, a timed-out one is not; so do
commands sent on connections of their own (:class:`DirectCommands`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from m3o.runtime.counters.redis import redis_counter_store
from m3o.runtime.errors import Unavailable
from m3o.runtime.store.redis import redis_client
from m3o.runtime.store.redis_direct import DirectCommands
from support.ports import closed_port
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
        await _every_connection_survives_a_restart(server, store.incr, 8)
    finally:
        await store.close()


async def _every_connection_survives_a_restart(
    server: RedisServer, incr: Callable[[str], Awaitable[Any]], connections: int
) -> None:
    """``connections`` increments at once (as many connections), a restart while they are
    idle, and as many again: none fails, and each counts from an empty Redis."""
    keys = [f"k{i}" for i in range(connections)]
    assert await asyncio.gather(*(incr(key) for key in keys)) == [1] * connections
    server.restart()  # every idle connection closed by the restart
    assert await asyncio.gather(*(incr(key) for key in keys)) == [1] * connections


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


@asynccontextmanager
async def _fake_redis(
    answer: Callable[[bytes, asyncio.StreamWriter], None],
) -> AsyncIterator[tuple[str, list[bytes], list[asyncio.StreamWriter]]]:
    """A server speaking just enough Redis: ``answer`` writes the replies to what each
    read brought. Yields its URL, what it received and its connections."""
    received: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(65536):
            received.append(data)
            answer(data, writer)
            await writer.drain()

    fake = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0", received, writers
    finally:
        fake.close()
        for writer in writers:
            writer.close()
        await fake.wait_closed()


def _silent_on_incr(data: bytes, writer: asyncio.StreamWriter) -> None:
    """Accepts the connection's set-up commands, never answers INCR."""
    if b"INCR" not in data.upper():
        writer.write(b"+OK\r\n")


async def test_a_command_that_timed_out_is_not_sent_again() -> None:
    """Redis may be running it: sending it again could count it twice."""
    async with _fake_redis(_silent_on_incr) as (url, received, _):
        client = redis_client(url, timeout=0.2)
        try:
            with pytest.raises(RedisTimeoutError):
                await client.incr("count")
            assert sum(b"INCR" in data.upper() for data in received) == 1
        finally:
            await client.aclose()


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


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    made = redis_client(server.url(), timeout=5)
    try:
        yield made
    finally:
        await made.aclose()


async def _connections(client: aioredis.Redis) -> int:
    return len(await client.client_list())


async def _count(client: aioredis.Redis, expected: int) -> None:
    async def reached() -> bool:
        return await _connections(client) == expected

    await _until(reached, f"{expected} connections")


# Commands on connections of their own (DirectCommands) keep the same promises: replies as
# the client reads them, a lost script loaded again, connections from before an outage
# replaced, a timed-out command neither sent again nor its connection used again.


async def test_direct_replies_are_the_clients(client: aioredis.Redis) -> None:
    direct = DirectCommands(client)
    try:
        assert await direct.execute("INCRBY", "n", 5) == 5
        assert await direct.execute("HSET", "h", "a", "1", "b", "2") == 2
        assert await direct.execute("HDEL", "h", "a", "c") == 1
        script = client.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
        assert await direct.run_script(script, ["k"], ["v", 41]) == [b"k", b"v", 42]
        assert await client.get("n") == b"5"
    finally:
        await direct.close()


async def test_a_direct_error_reply_is_raised_and_the_connection_kept(
    client: aioredis.Redis,
) -> None:
    direct = DirectCommands(client)
    try:
        await client.set("text", "x")
        first = await direct.execute("CLIENT", "ID")
        with pytest.raises(ResponseError, match="not an integer"):
            await direct.execute("INCR", "text")
        assert await direct.execute("CLIENT", "ID") == first  # the same connection
    finally:
        await direct.close()


async def test_a_direct_script_redis_lost_is_loaded_and_run(client: aioredis.Redis) -> None:
    direct = DirectCommands(client)
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    try:
        assert await direct.run_script(script, ["n"], [1]) == 1
        await client.script_flush()
        assert await direct.run_script(script, ["n"], [1]) == 2  # run once, not twice
        assert await client.get("n") == b"2"
    finally:
        await direct.close()


async def test_direct_connections_from_before_an_outage_are_replaced(
    server: RedisServer, client: aioredis.Redis
) -> None:
    direct = DirectCommands(client)
    try:
        await _every_connection_survives_a_restart(
            server, lambda key: direct.execute("INCR", key), 4
        )
    finally:
        await direct.close()


async def test_as_many_lanes_as_commands_at_once_and_they_stay_the_pools(
    server: RedisServer,
) -> None:
    client = redis_client(server.url(), timeout=5)
    observer = redis_client(server.url(), timeout=5)
    direct = DirectCommands(client)
    try:
        await asyncio.gather(*(direct.execute("PING") for _ in range(3)))
        for _ in range(5):
            await direct.execute("PING")
        assert await _connections(observer) == 1 + 3
        await direct.close()  # back to the pool, which the client's commands use
        await asyncio.gather(*(client.ping() for _ in range(3)))
        assert await _connections(observer) == 1 + 3
        await client.aclose()
        await _count(observer, 1)
    finally:
        await client.aclose()
        await observer.aclose()


async def test_closing_the_client_closes_the_lanes(server: RedisServer) -> None:
    client = redis_client(server.url(), timeout=5)
    observer = redis_client(server.url(), timeout=5)
    try:
        direct = DirectCommands(client)
        await asyncio.gather(*(direct.execute("PING") for _ in range(2)))
        assert await _connections(observer) == 1 + 2
        await client.aclose()  # the lanes were never given back
        await _count(observer, 1)
    finally:
        await observer.aclose()


async def test_a_direct_command_to_an_unreachable_redis_raises_connection_error() -> None:
    client = redis_client(f"redis://127.0.0.1:{closed_port()}/0", timeout=1)
    direct = DirectCommands(client)
    try:
        with pytest.raises(RedisConnectionError):
            await direct.execute("PING")
    finally:
        await direct.close()
        await client.aclose()


async def test_a_timed_out_direct_command_is_not_sent_again_nor_its_connection_used() -> None:
    """Redis may still be running it, and its late reply must not answer another."""
    pending: set[asyncio.StreamWriter] = set()

    def late_on_incr(data: bytes, writer: asyncio.StreamWriter) -> None:
        # INCR is answered only with the next command's bytes, so a connection used again
        # would read INCR's reply as that command's.
        if writer in pending:
            pending.discard(writer)
            writer.write(b":7\r\n")
        if b"INCR" in data.upper():
            pending.add(writer)
            return
        writer.write(b"+PONG\r\n" if b"PING" in data.upper() else b"+OK\r\n")

    async with _fake_redis(late_on_incr) as (url, received, connections):
        client = redis_client(url, timeout=0.2)
        direct = DirectCommands(client)
        try:
            with pytest.raises(RedisTimeoutError):
                await direct.execute("INCR", "count")
            assert await direct.execute("PING") == b"PONG"
            assert sum(b"INCR" in data.upper() for data in received) == 1
            assert len(connections) == 2
        finally:
            await direct.close()
            await client.aclose()


async def test_a_cancelled_direct_command_leaves_its_connection_closed(
    client: aioredis.Redis,
) -> None:
    direct = DirectCommands(client)
    blocked = asyncio.create_task(direct.execute("BLPOP", "queue", 5))
    try:

        async def waiting() -> bool:
            return any(c.get("cmd") == "blpop" for c in await client.client_list())

        await _until(waiting, "the BLPOP sent")
        before = await _connections(client)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked

        async def closed() -> bool:
            return await _connections(client) == before - 1

        await _until(closed, "the cancelled command's connection closed")
        await client.rpush("queue", "job")  # no BLPOP left to take it
        assert await client.lrange("queue", 0, -1) == [b"job"]
        assert await direct.execute("LPOP", "queue") == b"job"
    finally:
        await direct.close()
