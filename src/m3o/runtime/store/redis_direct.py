"""Commands sent on connections of their own, without the client's per-command machinery.

A command through a redis-py client takes a pooled connection (a condition variable and a
check that the socket is still open), runs a retry wrapper, records observability and
gives the connection back: about 35 µs of CPU a command here, on top of the 18 µs that
writing it and reading its reply take. :class:`DirectCommands` takes a few connections
from the client's pool once and keeps them, for a caller that already bounds how many of
its commands run at once (the counter store's hottest operations: a batch's admissions,
its commits, its settles), and sends each command on an idle one.

What :func:`~m3o.runtime.store.redis.redis_client` promises still holds:

- sockets time out after the client's timeout, and a connection idle for its health
  check interval is pinged before its next command;
- a command whose connection failed (refused, reset, closed by Redis: a restart, an idle
  timeout) is sent once more on a fresh connection, and only then fails; a command that
  timed out is not sent again;
- a socket whose command did not end with a whole reply (a timeout, a cancellation, a
  broken connection) is closed and never read again (its lane's next command opens a fresh
  one): a late reply cannot be read as another command's;
- a script Redis does not have (a restart, ``SCRIPT FLUSH``) is loaded and run once more:
  nothing of it ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

from m3o.runtime.store.redis import COMMAND_RETRIES

__all__ = ["DirectCommands"]


class DirectCommands:
    """Commands on connections taken from ``client``'s pool once and kept here (lanes).

    As many lanes are taken as commands were ever in flight at once, so the caller bounds
    them, and the pool must have room for them besides the client's own commands (the
    counter store's pool holds twice its ``max_in_flight``). They stay the pool's: closing
    the client closes them; :meth:`close` gives them back.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._pool = client.connection_pool
        self._get = cast(Callable[[], Awaitable[AbstractConnection]], self._pool.get_connection)
        self._idle: list[AbstractConnection] = []
        self._taken: list[AbstractConnection] = []

    async def execute(self, *args: EncodableT) -> Any:
        """The reply of one command; a Redis error reply raises its ``ResponseError``."""
        return await self._execute(args, None)

    async def execute_packed(self, packed: bytes) -> Any:
        """:meth:`execute` of a command already in Redis's wire format (RESP)."""
        return await self._execute((), packed)

    async def _execute(self, args: Sequence[EncodableT], packed: bytes | None) -> Any:
        lane = self._idle.pop() if self._idle else await self._take()
        try:
            return await self._send(
                lane, [packed] if packed is not None else lane.pack_command(*args)
            )
        except ResponseError:
            raise  # its reply was read whole: the connection is fine
        except BaseException:
            # No whole reply (timed out, cancelled, broken): its socket is closed (redis-py
            # closes it too), and the lane's next command opens a fresh one.
            await lane.disconnect(nowait=True)
            raise
        finally:
            self._idle.append(lane)

    async def _take(self) -> AbstractConnection:
        lane = await self._get()
        self._taken.append(lane)
        return lane

    async def _send(self, lane: AbstractConnection, packed: list[bytes]) -> Any:
        for attempt in range(COMMAND_RETRIES + 1):
            try:
                await lane.send_packed_command(packed)
                return await lane.read_response()
            except RedisConnectionError:
                await lane.disconnect(nowait=True)
                if attempt == COMMAND_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def run_script(
        self, script: AsyncScript, keys: Sequence[EncodableT], args: Sequence[EncodableT]
    ) -> Any:
        """``EVALSHA`` of ``script`` (registered on the client); loaded first if Redis has
        lost it."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return await self._scripted(script, lambda: self.execute(*command))

    async def run_packed_script(self, script: AsyncScript, packed: bytes) -> Any:
        """:meth:`run_script` of an ``EVALSHA`` of ``script`` already packed (RESP)."""
        return await self._scripted(script, lambda: self.execute_packed(packed))

    async def _scripted(self, script: AsyncScript, send: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await send()
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.script)
            return await send()

    async def close(self) -> None:
        """Give the lanes back to the pool (call once nothing is in flight)."""
        taken, self._taken, self._idle = self._taken, [], []
        for lane in taken:
            await self._pool.release(lane)
