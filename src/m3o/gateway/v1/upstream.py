"""What a forwarder is, and what its failures become for the caller.

A forwarder calls one kind of upstream (``local``, ``grpc``, ``http``) with a payload its
:class:`Codec` built from the caller's JSON (or binary frame), and answers with a payload
the codec turns back into JSON (or a binary frame).

Failures, as the caller sees them:

- an error kind the upstream raised for a client error (400, 401, 403, 404, 409, 429)
  passes through with its kind and detail;
- a timeout: Unavailable ``The API did not answer in time``;
- an upstream that cannot be reached (or says it is unavailable): Unavailable ``The API is
  unavailable, please try again later``;
- anything else is a crash: Internal ``Error processing request. If the problem persists
  please contact support``, and operators are alerted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

import orjson
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.targets import Target
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    Internal,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from m3o.runtime.rpc.jsonmap import dict_to_message, message_to_json

__all__ = [
    "BINARY_UNSUPPORTED",
    "CRASHED",
    "MALFORMED",
    "ONE_REQUEST",
    "TIMED_OUT",
    "UNREACHABLE",
    "Codec",
    "Forwarder",
    "JsonCodec",
    "MessageCodec",
    "Payload",
    "UpstreamStream",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "public_error",
]

MALFORMED = "Request message malformed, please check and try again"
CRASHED = "Error processing request. If the problem persists please contact support"
TIMED_OUT = "The API did not answer in time"
UNREACHABLE = "The API is unavailable, please try again later"
ONE_REQUEST = "This endpoint takes one request message"
BINARY_UNSUPPORTED = "Binary messages need an API with protobuf descriptors"

Payload = Message | bytes
"""A protobuf message (local and grpc upstreams) or JSON bytes (http upstreams)."""

_CLIENT_ERRORS = (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests)


class UpstreamTimeout(Exception):
    """The upstream did not answer within the deadline."""


class UpstreamUnreachable(Exception):
    """The upstream could not be reached, or said it is unavailable."""


def public_error(exc: BaseException) -> tuple[M3OError, bool]:
    """What the caller is told of an upstream failure, and whether it is a crash (to
    alert on)."""
    if isinstance(exc, _CLIENT_ERRORS):
        return exc, False
    if isinstance(exc, UpstreamTimeout | TimeoutError | DeadlineExceeded):
        return Unavailable(ERROR_ID, TIMED_OUT), False
    if isinstance(exc, UpstreamUnreachable | Unavailable):
        return Unavailable(ERROR_ID, UNREACHABLE), False
    return Internal(ERROR_ID, CRASHED), True


class Codec(Protocol):
    @property
    def request_descriptor(self) -> Descriptor | None:
        """The request message's descriptor when known (to shape query values)."""
        ...

    def from_json(self, data: dict[str, Any]) -> Payload:
        """The upstream request; BadRequest :data:`MALFORMED` when it does not fit."""
        ...

    def from_binary(self, raw: bytes) -> Payload: ...

    def to_json(self, payload: Payload) -> bytes: ...

    def to_binary(self, payload: Payload) -> bytes: ...


class MessageCodec:
    """JSON (M3O's mapping) or binary protobuf to and from the method's messages."""

    def __init__(self, request_type: type[Message], response_type: type[Message]) -> None:
        self._request_type = request_type
        self._response_type = response_type

    @property
    def request_descriptor(self) -> Descriptor | None:
        return cast(Descriptor, self._request_type.DESCRIPTOR)

    @property
    def response_type(self) -> type[Message]:
        return self._response_type

    def from_json(self, data: dict[str, Any]) -> Payload:
        try:
            return dict_to_message(data, self._request_type, ERROR_ID)
        except BadRequest:
            raise BadRequest(ERROR_ID, MALFORMED) from None

    def from_binary(self, raw: bytes) -> Payload:
        try:
            return self._request_type.FromString(raw)
        except DecodeError:
            raise BadRequest(ERROR_ID, MALFORMED) from None

    def to_json(self, payload: Payload) -> bytes:
        if isinstance(payload, bytes):
            return payload
        return message_to_json(payload)

    def to_binary(self, payload: Payload) -> bytes:
        return payload if isinstance(payload, bytes) else payload.SerializeToString()


class JsonCodec:
    """JSON passed through as it is (http upstreams)."""

    def __init__(self, request_descriptor: Descriptor | None = None) -> None:
        self._descriptor = request_descriptor

    @property
    def request_descriptor(self) -> Descriptor | None:
        return self._descriptor

    def from_json(self, data: dict[str, Any]) -> Payload:
        return orjson.dumps(data)

    def from_binary(self, raw: bytes) -> Payload:
        raise BadRequest(ERROR_ID, BINARY_UNSUPPORTED)

    def to_json(self, payload: Payload) -> bytes:
        return payload if isinstance(payload, bytes) else message_to_json(payload)

    def to_binary(self, payload: Payload) -> bytes:
        raise BadRequest(ERROR_ID, BINARY_UNSUPPORTED)


class UpstreamStream(Protocol):
    """One streaming call in progress."""

    async def write(self, message: Payload) -> None:
        """Send one more request message (bidirectional and client-streaming methods)."""
        ...

    async def done_writing(self) -> None: ...

    async def read(self) -> Payload | None:
        """The next response message; None once the stream has ended cleanly. Raises as
        :meth:`Forwarder.unary` does."""
        ...

    async def aclose(self) -> None:
        """End the call (cancelling it if it still runs); call once nothing reads."""
        ...


class Forwarder(Protocol):
    def codec(self, target: Target) -> Codec:
        """How ``target``'s messages are built and read."""
        ...

    async def unary(
        self,
        target: Target,
        request: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Payload:
        """One call. Raises the upstream's error kind, :class:`UpstreamTimeout`,
        :class:`UpstreamUnreachable`, or anything else for a crash."""
        ...

    async def open(
        self,
        target: Target,
        first: Payload,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> UpstreamStream:
        """Start a streaming call with its first request message."""
        ...

    async def close(self) -> None: ...
