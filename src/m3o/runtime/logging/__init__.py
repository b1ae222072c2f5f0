"""Structured logging, with secrets redacted by a processor rather than by remembering.

Any key whose name says it holds a secret (``password``, ``secret``, ``token``, ``code``,
``key``, ``authorization``, ...) has its value replaced by ``[redacted]``, at any depth of
the event dict, and bearer tokens or API keys (ours, and M3O's base64 uuids) inside free
text are masked too.

The request a piece of work is for follows it into every log line and every RPC: the HTTP
front settles a request id per request (``X-Request-Id``) and runs the request inside
:func:`request_context`; so does a service's dispatcher for each call it serves, with the id
its caller sent as ``x-request-id`` metadata. Inside, every log line carries ``request_id``
(structlog's context variables), tasks started inside inherit it, and the generated clients
pass it on with each call (:func:`current_request_id`). With tracing on
(:mod:`m3o.runtime.logging.tracing`), a line written inside a span also carries its
``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

from m3o.runtime.logging.tracing import trace_ids

__all__ = [
    "REQUEST_ID_KEY",
    "configure_logging",
    "current_request_id",
    "get_logger",
    "is_sane_request_id",
    "redact",
    "request_context",
]

_SECRET_NAMES = re.compile(
    r"((^|_)pass(word|wd|phrase)?s?(_|$)|password|secret|token|code|(^|_)key$|api_?key"
    r"|authorization|cookie|pepper|signature|credential)",
    re.IGNORECASE,
)
"""Names of fields holding secrets. ``pass`` counts as a whole part of the name only
(``pass``, ``new_pass``, ``passphrase``), so that ``passed`` or ``bypass`` are shown."""
_NOT_SECRET = frozenset({"status_code", "code_id", "key_id", "api_key_id", "grpc_code"})
_SECRET_TEXT = re.compile(
    r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|m3o_[A-Za-z0-9_-]{8,}"
    # keys imported from M3O: 48 base64 characters (a UUID's text)
    r"|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{48}(?![A-Za-z0-9+/=])"
)
REDACTED = "[redacted]"


_UNMASKED_LENGTH = 48
"""Text shorter than this holds a secret only after ``Bearer`` or ``m3o_``; most log
values (paths, ids, statuses) are shorter and skip the regular expression."""


def _mask_text(text: str) -> str:
    if len(text) < _UNMASKED_LENGTH and "m3o_" not in text and "Bearer" not in text:
        return text
    return _SECRET_TEXT.sub(lambda m: (m.group(1) or "") + REDACTED, text)


@functools.lru_cache(maxsize=1024)
def _secret_name(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (field names are few: cached)."""
    return name not in _NOT_SECRET and bool(_SECRET_NAMES.search(name))


def _redact_value(name: str, value: Any) -> Any:
    if _secret_name(name):
        return REDACTED
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(name, v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: hide secrets wherever they appear in the event."""
    for name in list(event_dict):
        if name == "event":
            event_dict[name] = _mask_text(str(event_dict[name]))
        else:
            event_dict[name] = _redact_value(name, event_dict[name])
    return event_dict


def configure_logging(level: str = "info", json: bool = True) -> None:
    """Configure structlog once at process start (the CLI calls this)."""
    # JSON lines are rendered by orjson, as bytes written straight to stderr's buffer: the
    # access log writes one per request, and the standard library's encoder was most of
    # its cost.
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=orjson.dumps, option=orjson.OPT_NON_STR_KEYS)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    factory: Any = (
        structlog.BytesLoggerFactory(file=sys.stderr.buffer)
        if json
        else structlog.PrintLoggerFactory(file=sys.stderr)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


REQUEST_ID_KEY = "x-request-id"
"""The request id's header (HTTP) and metadata key (RPC)."""

_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_REQUEST_ID: ContextVar[str] = ContextVar("m3o_request_id", default="")


def is_sane_request_id(offered: str) -> bool:
    """Short and plain: safe to log and to pass on."""
    return bool(_SANE_ID.match(offered))


def current_request_id() -> str:
    """The id of the request being served here; empty outside one."""
    return _REQUEST_ID.get()


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Run the block as part of request ``request_id`` (ignored when empty or not sane)."""
    if not request_id or not is_sane_request_id(request_id) or request_id == _REQUEST_ID.get():
        yield
        return
    token = _REQUEST_ID.set(request_id)
    bound = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**bound)
        _REQUEST_ID.reset(token)
