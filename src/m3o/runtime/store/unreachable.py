"""Which database failures mean "the database cannot take this now, ask again", for code
that turns them into :class:`~m3o.runtime.errors.Unavailable` (503) rather than an
internal error (500):

- a connection lost during the work (SQLAlchemy marks the error
  ``connection_invalidated``); one that could not be made at all comes as the socket's
  own ``OSError`` (refused, reset, timed out), which callers that know where it came from
  treat alike (an RPC handler's ``ConnectionError``, the counter store's every
  ``OSError``);
- a PostgreSQL server that answered but refused the work for want of room or because it
  is going down, by its SQLSTATE: class 08 (connection exceptions), class 53 (insufficient
  resources: ``53300`` "sorry, too many clients already" when every connection slot is
  taken, out of memory, disk full), ``57P01``-``57P03`` (shutting down, crashed, not
  accepting connections yet);
- a SQLite database busy or locked past the busy timeout, or whose file cannot be opened,
  read or written (``SQLITE_BUSY``, ``SQLITE_LOCKED``, ``SQLITE_IOERR``, ``SQLITE_FULL``,
  ``SQLITE_CANTOPEN``).

Anything else (a constraint, a syntax error, a missing table) is a bug or an input error
and stays what it is.

:func:`redis_unreachable` says the same of Redis's client: it could not connect, or
Redis did not answer in time.
"""

from __future__ import annotations

import sys

from sqlalchemy.exc import DBAPIError

__all__ = ["database_unreachable", "redis_unreachable"]

_POSTGRES_STATES = ("08", "53", "57P01", "57P02", "57P03")
"""SQLSTATE prefixes of a server that cannot take the work now."""
_SQLITE_CODES = frozenset({5, 6, 10, 13, 14})
"""Primary result codes: BUSY, LOCKED, IOERR, FULL, CANTOPEN."""


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or could not take the work
    now (worth asking again), not that the work itself is wrong."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_POSTGRES_STATES)
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _SQLITE_CODES


def redis_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is redis-py's failure to reach Redis or to get its answer in time
    (its ``ConnectionError`` or ``TimeoutError``).

    The client's module is looked up, not imported: a process that never imported it
    (``m3o serve`` uses no Redis) cannot have raised its errors, and the RPC layer that
    asks this of every failure would otherwise load the client into every process."""
    errors = sys.modules.get("redis.exceptions")
    if errors is None:
        return False
    return isinstance(exc, (errors.ConnectionError, errors.TimeoutError))
