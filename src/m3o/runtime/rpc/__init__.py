"""Calling services: method descriptions, the server-side dispatcher and two transports.

A generated client (``services/<name>/proto/client.py``) turns ``await customers.read(req)``
into ``transport.unary(spec, method, req, ...)``. Two transports implement it:

- :class:`InProcessTransport`: calls the service's :class:`Dispatcher` directly (the
  ``local`` profile and tests): the same interceptors, no socket, no serialisation;
- :class:`GrpcTransport`: a ``grpc.aio`` channel to another process (``platform``).

On the server side a :class:`Dispatcher` wraps a handler with the interceptors every call
goes through, in this order: deadline, logging and metrics, errors, authentication, access
rules, then the handler method. :func:`grpc_handlers` exposes dispatchers on a gRPC server.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import grpc
from google.protobuf.message import Message

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.errors import (
    DeadlineExceeded,
    Internal,
    M3OError,
    Unauthorized,
    Unavailable,
    error_from_grpc,
    error_id,
)
from m3o.runtime.logging import (
    REQUEST_ID_KEY,
    current_request_id,
    get_logger,
    request_context,
)
from m3o.runtime.logging.tracing import (
    client_span,
    server_span,
    stream_client_span,
    stream_server_span,
)
from m3o.runtime.store.unreachable import database_unreachable, redis_unreachable

__all__ = [
    "DEFAULT_TIMEOUT",
    "INTERNAL_DETAIL",
    "RECONNECT_OPTIONS",
    "UNAVAILABLE_DETAIL",
    "AccessRules",
    "Authenticator",
    "Client",
    "Dispatcher",
    "GrpcTransport",
    "InProcessTransport",
    "MethodSpec",
    "RpcObserver",
    "ServiceRouter",
    "ServiceSpec",
    "StaticToken",
    "TokenSource",
    "Transport",
    "bearer_token",
    "grpc_handlers",
    "service_channel",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a call may take unless the caller says otherwise."""
INTERNAL_DETAIL = "Internal server error"
"""What a caller is told of a failure that is not theirs (the cause is logged, not sent)."""
UNAVAILABLE_DETAIL = "Service unavailable"
"""What a caller is told when a server the handler needs cannot be reached."""

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One RPC: ``Create`` of ``customers.Customers``."""

    name: str
    python_name: str
    request_type: type[Message]
    response_type: type[Message]
    server_streaming: bool = False
    client_streaming: bool = False


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One protobuf service of a platform service.

    ``service`` is the platform service's name (``customers``: URLs, error ids, the
    process to reach); ``full_name`` the protobuf name (``customers.Customers``); ``handler``
    its short name (``Customers``), used in ``/<service>/<Handler>/<endpoint>`` routes.
    """

    service: str
    full_name: str
    methods: Mapping[str, MethodSpec]

    @property
    def handler(self) -> str:
        return self.full_name.rsplit(".", 1)[-1]

    def path(self, method: MethodSpec) -> str:
        return f"/{self.full_name}/{method.name}"


class TokenSource(Protocol):
    """Gives the bearer token a client sends (a service's own, or a caller's)."""

    async def token(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A token known up front (a forwarded caller token, a test's)."""

    value: str

    async def token(self) -> str:
        return self.value


class Authenticator(Protocol):
    """Turns a bearer token into an Account, or raises Unauthorized."""

    async def authenticate(self, token: str) -> Account: ...


class AccessRules(Protocol):
    """Decides whether ``account`` (None when anonymous) may call an endpoint.

    ``service`` is the platform service (``customers``), ``endpoint`` is
    ``<Handler>.<Method>`` (``Customers.Read``). Raises Unauthorized for an anonymous
    caller and Forbidden for a refused account.
    """

    async def verify(self, account: Account | None, service: str, endpoint: str) -> None: ...


class RpcObserver(Protocol):
    """Receives one record per finished call (metrics)."""

    def observe(self, service: str, method: str, code: int, seconds: float) -> None: ...


class Transport(Protocol):
    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message: ...

    def server_stream(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> AsyncIterator[Message]: ...


def bearer_token(metadata: Mapping[str, str]) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry, if any."""
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Dispatcher:
    """Runs a handler's methods behind the interceptors every call goes through.

    ``handler`` has one ``async def <python_name>(request, ctx)`` per unary RPC and one
    async generator per server-streaming RPC. Methods in ``public`` skip the access rules
    (the auth service's key and rule listings, which the rules themselves depend on).
    """

    def __init__(
        self,
        spec: ServiceSpec,
        handler: object,
        *,
        authenticator: Authenticator | None,
        rules: AccessRules | None,
        observer: RpcObserver | None = None,
        public: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = spec
        self._public = public
        self._handler = handler
        self._authenticator = authenticator
        self._rules = rules
        self._observer = observer
        missing = [
            m.python_name for m in spec.methods.values() if not hasattr(handler, m.python_name)
        ]
        if missing:
            raise TypeError(
                f"{type(handler).__name__} lacks {', '.join(missing)} of {spec.full_name}"
            )

    async def _context(
        self, method: MethodSpec, metadata: Mapping[str, str], deadline: float | None
    ) -> CallContext:
        public = method.name in self._public
        account: Account | None = None
        token = bearer_token(metadata)
        if token is not None:
            if self._authenticator is None:
                raise Unauthorized(error_id(self.spec.service, method.name), "Unauthorized")
            try:
                account = await self._authenticator.authenticate(token)
            except Unauthorized:
                # A stale token must not lock a caller out of public endpoints (login).
                if not public:
                    raise
        if self._rules is not None and not public:
            await self._rules.verify(
                account, self.spec.service, f"{self.spec.handler}.{method.name}"
            )
        return CallContext(self.spec.service, method.name, account, metadata, deadline)

    def _fail(self, ctx_id: str, exc: BaseException) -> M3OError:
        if isinstance(exc, M3OError):
            return exc
        if isinstance(exc, TimeoutError):
            return DeadlineExceeded(ctx_id)
        if isinstance(exc, ConnectionError) or redis_unreachable(exc) or database_unreachable(exc):
            # Redis, the database (or another server) down, full or too slow: worth
            # retrying, not a bug.
            _log.warning("rpc.unavailable", endpoint=ctx_id, exc_info=exc)
            return Unavailable(ctx_id, UNAVAILABLE_DETAIL)
        _log.error("rpc.internal_error", endpoint=ctx_id, exc_info=exc)
        return Internal(ctx_id, INTERNAL_DETAIL)

    def _observe(self, method: MethodSpec, code: int, started: float) -> None:
        if self._observer is not None:
            self._observer.observe(
                self.spec.service, method.name, code, time.perf_counter() - started
            )

    async def unary(
        self,
        method: MethodSpec,
        request: Message,
        metadata: Mapping[str, str],
        deadline: float | None,
    ) -> Message:
        started = time.perf_counter()
        endpoint = error_id(self.spec.service, method.name)
        name, attributes = _span_of(self.spec.service, self.spec.full_name, method.name)
        with (
            request_context(metadata.get(REQUEST_ID_KEY, "")),
            server_span(name, metadata, attributes),
        ):
            try:
                async with asyncio.timeout_at(_loop_deadline(deadline)):
                    ctx = await self._context(method, metadata, deadline)
                    call: Callable[[Message, CallContext], Awaitable[Message]] = getattr(
                        self._handler, method.python_name
                    )
                    response = await call(request, ctx)
            except Exception as exc:  # noqa: BLE001 - the one place every failure becomes an error kind
                error = self._fail(endpoint, exc)
                self._observe(method, error.code, started)
                raise error from None
        self._observe(method, 200, started)
        return response

    async def server_stream(
        self,
        method: MethodSpec,
        request: Message,
        metadata: Mapping[str, str],
        deadline: float | None,
    ) -> AsyncIterator[Message]:
        started = time.perf_counter()
        endpoint = error_id(self.spec.service, method.name)
        name, attributes = _span_of(self.spec.service, self.spec.full_name, method.name)
        with stream_server_span(name, metadata, attributes):
            try:
                async with asyncio.timeout_at(_loop_deadline(deadline)):
                    ctx = await self._context(method, metadata, deadline)
                    stream: Callable[[Message, CallContext], AsyncIterator[Message]] = getattr(
                        self._handler, method.python_name
                    )
                    async for message in stream(request, ctx):
                        yield message
            except Exception as exc:  # noqa: BLE001 - see unary
                error = self._fail(endpoint, exc)
                self._observe(method, error.code, started)
                raise error from None
        self._observe(method, 200, started)


@functools.cache
def _span_of(service: str, full_name: str, method: str) -> tuple[str, dict[str, str]]:
    """An RPC's span name and attributes (OpenTelemetry's RPC conventions)."""
    attributes = {
        "rpc.system": "grpc",
        "rpc.service": full_name,
        "rpc.method": method,
        "m3o.service": service,
    }
    return f"{full_name}/{method}", attributes


def _loop_deadline(deadline: float | None) -> float | None:
    """Convert a ``time.monotonic()`` deadline to the running loop's clock."""
    if deadline is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class InProcessTransport:
    """Calls dispatchers registered in this process: no socket, same interceptors.

    Requests are copied so a handler can never mutate its caller's message, as over a wire.
    """

    def __init__(self) -> None:
        self._dispatchers: dict[str, Dispatcher] = {}

    def register(self, dispatcher: Dispatcher) -> None:
        self._dispatchers[dispatcher.spec.full_name] = dispatcher

    def _dispatcher(self, spec: ServiceSpec) -> Dispatcher:
        dispatcher = self._dispatchers.get(spec.full_name)
        if dispatcher is None:
            raise Unavailable(spec.service, f"Service {spec.service} is not available")
        return dispatcher

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        copy = type(request)()
        copy.CopyFrom(request)
        return await self._dispatcher(spec).unary(method, copy, metadata, _deadline(timeout))

    async def server_stream(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> AsyncIterator[Message]:
        copy = type(request)()
        copy.CopyFrom(request)
        async for message in self._dispatcher(spec).server_stream(
            method, copy, metadata, _deadline(timeout)
        ):
            yield message


RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)
"""gRPC channel options: a channel whose server is away tries to reconnect at most half a
second apart (gRPC's default backoff grows to two minutes between attempts)."""


def service_channel(address: str) -> grpc.aio.Channel:
    """A channel to another of the platform's processes at ``address`` (``unix:...`` or
    ``host:port``), trying to reconnect at most half a second apart while it is down.

    gRPC's default backoff grows to two minutes between attempts: a service back after a
    restart, or one that starts after its callers, was not tried again for that long, so
    health checks failed and calls waiting for the channel ran out their deadline while it
    was serving. Attempts to the platform's own services are cheap.
    """
    return grpc.aio.insecure_channel(address, options=RECONNECT_OPTIONS)


class GrpcTransport:
    """Calls another process over a ``grpc.aio`` channel.

    In-flight calls are bounded per channel (``grpc.aio`` cancels calls when thousands are
    outstanding on one channel). Calls wait for the channel to connect, within their
    deadline, rather than fail at once while it is reconnecting (a service restarting in a
    rolling deploy, or starting after its callers).
    """

    def __init__(self, channel: grpc.aio.Channel, *, max_in_flight: int = 512) -> None:
        self._channel = channel
        self._limit = asyncio.Semaphore(max_in_flight)
        self._callables: dict[str, Any] = {}

    def _callable(self, spec: ServiceSpec, method: MethodSpec) -> Any:
        path = spec.path(method)
        found = self._callables.get(path)
        if found is None:
            factory = (
                self._channel.unary_stream if method.server_streaming else self._channel.unary_unary
            )
            found = factory(
                path,
                request_serializer=method.request_type.SerializeToString,
                response_deserializer=method.response_type.FromString,
            )
            self._callables[path] = found
        return found

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        call = self._callable(spec, method)
        async with self._limit:
            try:
                response: Message = await call(
                    request, metadata=tuple(metadata.items()), timeout=timeout, wait_for_ready=True
                )
            except grpc.aio.AioRpcError as exc:
                raise error_from_grpc(
                    exc.code(), exc.details(), error_id(spec.service, method.name)
                ) from None
        return response

    async def server_stream(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> AsyncIterator[Message]:
        call = self._callable(spec, method)
        async with self._limit:
            stream = call(
                request, metadata=tuple(metadata.items()), timeout=timeout, wait_for_ready=True
            )
            try:
                async for message in stream:
                    yield message
            except grpc.aio.AioRpcError as exc:
                raise error_from_grpc(
                    exc.code(), exc.details(), error_id(spec.service, method.name)
                ) from None


class Client:
    """Base of generated clients: adds credentials and the default deadline to each call."""

    spec: ClassVar[ServiceSpec]

    def __init__(
        self,
        spec: ServiceSpec,
        transport: Transport,
        credentials: TokenSource | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._spec = spec
        self._transport = transport
        self._credentials = credentials
        self._timeout = timeout

    async def _metadata(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        metadata = dict(extra or {})
        if self._credentials is not None and "authorization" not in metadata:
            metadata["authorization"] = f"Bearer {await self._credentials.token()}"
        request_id = current_request_id()
        if request_id and REQUEST_ID_KEY not in metadata:
            metadata[REQUEST_ID_KEY] = request_id
        return metadata

    async def _unary(
        self,
        name: str,
        request: Message,
        timeout: float | None,
        metadata: Mapping[str, str] | None,
    ) -> Message:
        method = self._spec.methods[name]
        sent = await self._metadata(metadata)
        span_name, attributes = _span_of(self._spec.service, self._spec.full_name, name)
        with client_span(span_name, sent, attributes):
            return await self._transport.unary(
                self._spec,
                method,
                request,
                metadata=sent,
                timeout=self._timeout if timeout is None else timeout,
            )

    async def _server_stream(
        self,
        name: str,
        request: Message,
        timeout: float | None,
        metadata: Mapping[str, str] | None,
    ) -> AsyncIterator[Message]:
        method = self._spec.methods[name]
        sent = await self._metadata(metadata)
        span_name, attributes = _span_of(self._spec.service, self._spec.full_name, name)
        with stream_client_span(span_name, sent, attributes):
            async for message in self._transport.server_stream(
                self._spec,
                method,
                request,
                metadata=sent,
                timeout=self._timeout if timeout is None else timeout,
            ):
                yield message


def grpc_handlers(dispatcher: Dispatcher) -> grpc.GenericRpcHandler[Any, Any]:
    """Expose a dispatcher's methods on a ``grpc.aio`` server."""
    spec = dispatcher.spec
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in spec.methods.values():
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _grpc_stream(dispatcher, method),
                request_deserializer=method.request_type.FromString,
                response_serializer=method.response_type.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _grpc_unary(dispatcher, method),
                request_deserializer=method.request_type.FromString,
                response_serializer=method.response_type.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(spec.full_name, handlers)


def _grpc_call_info(
    context: grpc.aio.ServicerContext[Any, Any],
) -> tuple[dict[str, str], float | None]:
    metadata = {
        key: value if isinstance(value, str) else value.decode()
        for key, value in (context.invocation_metadata() or ())
    }
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining
    return metadata, deadline


def _grpc_unary(
    dispatcher: Dispatcher, method: MethodSpec
) -> Callable[[Message, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]:
    async def behaviour(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        metadata, deadline = _grpc_call_info(context)
        try:
            return await dispatcher.unary(method, request, metadata, deadline)
        except M3OError as error:
            await context.abort(error.grpc_code, error.to_json().decode())
            raise  # abort raises; this keeps type checkers satisfied

    return behaviour


def _grpc_stream(
    dispatcher: Dispatcher, method: MethodSpec
) -> Callable[[Message, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Message]]:
    async def behaviour(
        request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        metadata, deadline = _grpc_call_info(context)
        try:
            async for message in dispatcher.server_stream(method, request, metadata, deadline):
                yield message
        except M3OError as error:
            await context.abort(error.grpc_code, error.to_json().decode())

    return behaviour


class ServiceRouter:
    """A transport that sends each call to the transport of the service it names.

    The ``platform`` profile uses one :class:`GrpcTransport` per service address
    (Kubernetes service DNS); services served by this very process can be routed to an
    :class:`InProcessTransport` instead.
    """

    def __init__(self, transport_for: Callable[[str], Transport]) -> None:
        self._transport_for = transport_for
        self._transports: dict[str, Transport] = {}

    def _transport(self, service: str) -> Transport:
        found = self._transports.get(service)
        if found is None:
            found = self._transport_for(service)
            self._transports[service] = found
        return found

    async def unary(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> Message:
        return await self._transport(spec.service).unary(
            spec, method, request, metadata=metadata, timeout=timeout
        )

    def server_stream(
        self,
        spec: ServiceSpec,
        method: MethodSpec,
        request: Message,
        *,
        metadata: Mapping[str, str],
        timeout: float | None,
    ) -> AsyncIterator[Message]:
        return self._transport(spec.service).server_stream(
            spec, method, request, metadata=metadata, timeout=timeout
        )
