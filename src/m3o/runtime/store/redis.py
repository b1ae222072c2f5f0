"""Every Redis client the platform builds, made in one place so they all survive an outage.

A client from :func:`redis_client`:

- has deadlines: ``timeout`` for each socket read and write (and for a free connection,
  when the pool is bounded), ``connect_timeout`` for connecting;
- checks a pooled connection before sending a command on it: one that Redis closed
  (a restart, a failover, an idle timeout) is replaced by a fresh one, so the first call
  after Redis returns does not fail on a connection from before the outage. (redis-py's
  maintenance notifications, on by default as ``"auto"``, skip that check: they are off.)
  A connection idle for ``health_check_interval`` seconds is pinged first;
- packs commands with hiredis's C packer (redis-py's synchronous connections do when
  hiredis is installed, its asyncio ones pack in Python: a batch's admission script run,
  hundreds of arguments, spent most of its client time there);
- sends a command once more, on a fresh connection, when its connection failed
  (:class:`redis.exceptions.ConnectionError`: refused, reset, closed by the server); there
  is no wait in between, and no third try. A command that timed out is **not** repeated:
  Redis may be running it, and repeating an ``INCR`` or an admission would count it twice
  (and add load to a Redis that is already slow).

Which of a client's exceptions mean Redis cannot be reached, for code that turns them
into :class:`~m3o.runtime.errors.Unavailable`, is
:func:`~m3o.runtime.store.unreachable.redis_unreachable`'s to say.
"""

from __future__ import annotations

from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.maint_notifications import MaintNotificationsConfig
from redis.typing import EncodableT

__all__ = [
    "COMMAND_RETRIES",
    "HEALTH_CHECK_INTERVAL",
    "redis_client",
    "reply_text",
]

COMMAND_RETRIES = 1
"""How many times a command whose connection failed is sent again, on a fresh one."""
HEALTH_CHECK_INTERVAL = 30
"""Seconds a pooled connection may stay idle before it is pinged ahead of its next use."""


def reply_text(value: object) -> str:
    """A string of a reply (clients that return bytes, ``decode_responses=False``, give
    bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _HiredisPacking:
    """Commands packed by ``hiredis.pack_command``: the same bytes as redis-py's own packer
    for what the platform sends (str, bytes, int, float; a bool or None is refused with
    :class:`~redis.exceptions.DataError` as redis-py refuses it)."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            if " " in first:  # "CONFIG GET": the words are separate arguments
                args = (*first.split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(cast(Any, args))]  # its stub types a 1-tuple
        except TypeError:
            pass
        views = tuple(bytes(a) if isinstance(a, (bytearray, memoryview)) else a for a in args)
        try:
            return [hiredis.pack_command(cast(Any, views))]
        except TypeError as exc:
            raise DataError(f"{exc} (a command's arguments)") from None


class _Connection(_HiredisPacking, aioredis.Connection):
    pass


class _SSLConnection(_HiredisPacking, aioredis.SSLConnection):
    pass


class _UnixDomainSocketConnection(_HiredisPacking, aioredis.UnixDomainSocketConnection):
    pass


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {
    aioredis.Connection: _Connection,
    aioredis.SSLConnection: _SSLConnection,
    aioredis.UnixDomainSocketConnection: _UnixDomainSocketConnection,
}


def redis_client(
    url: str,
    *,
    timeout: float,
    connect_timeout: float | None = None,
    max_connections: int | None = None,
    health_check_interval: int = HEALTH_CHECK_INTERVAL,
) -> aioredis.Redis:
    """A client for ``url`` (``redis://host:port/db``) that owns its connection pool
    (``await client.aclose()`` closes both).

    ``connect_timeout`` defaults to ``timeout``. With ``max_connections`` the pool is
    bounded: a command waits up to ``timeout`` for a free connection, then fails with a
    ConnectionError. Replies are bytes (``decode_responses=False``).
    """
    options = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout if connect_timeout is None else connect_timeout,
        "health_check_interval": health_check_interval,
        "retry": Retry(NoBackoff(), COMMAND_RETRIES, supported_errors=(RedisConnectionError,)),
        "retry_on_error": [RedisConnectionError],
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    pool: aioredis.ConnectionPool
    if max_connections is None:
        pool = aioredis.ConnectionPool.from_url(url, **options)
    else:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)
