"""Test doubles and a tiny-app builder for the gateway tests.

Each test builds its own application over an InProcessTransport and real Dispatchers
around small handlers, then talks to it with httpx through ASGITransport.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import Message
from starlette.applications import Starlette

from m3o.gateway import Metrics, create_app, directory
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    M3OError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_id,
)
from m3o.runtime.rpc import Dispatcher, InProcessTransport, MethodSpec, ServiceSpec
from m3o.services.helloworld.handler import Helloworld
from m3o.services.helloworld.proto import helloworld_pb2 as hello_pb
from m3o.services.helloworld.proto.client import SPEC as HELLO

__all__ = [
    "CUSTOMER",
    "HELLO",
    "KINDS",
    "Kinds",
    "Named",
    "Recorder",
    "Rules",
    "Served",
    "Tokens",
    "build_app",
    "client_for",
    "kinds_spec",
    "named_spec",
]

CUSTOMER = Account(id="c1", type="customer", name="c@example.com", scopes=("customer",))

ERRORS: dict[str, type[M3OError]] = {
    "badrequest": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "notfound": NotFound,
    "conflict": Conflict,
    "toomany": TooManyRequests,
    "internal": Internal,
    "unavailable": Unavailable,
}


class Tokens:
    """The authenticator: the token ``good`` is the customer, anything else is refused."""

    async def authenticate(self, token: str) -> Account:
        if token != "good":
            raise Unauthorized("auth", "Unauthorized")
        return CUSTOMER


class Rules:
    """Access rules: ``public`` endpoints (``Helloworld.Call``) need no account."""

    def __init__(self, public: Sequence[str] = ()) -> None:
        self._public = frozenset(public)

    async def verify(self, account: Account | None, service: str, endpoint: str) -> None:
        if account is None and endpoint not in self._public:
            raise Unauthorized(error_id(service, endpoint), "Unauthorized")


class Recorder(Helloworld):
    """helloworld, recording every call; a name from ERRORS (or ``crash``) fails."""

    def __init__(self) -> None:
        self.seen: list[tuple[Message, CallContext]] = []

    async def call(self, request: hello_pb.CallRequest, ctx: CallContext) -> hello_pb.CallResponse:
        self.seen.append((request, ctx))
        if request.name == "crash":
            raise RuntimeError("database password is hunter2")
        kind = ERRORS.get(request.name)
        if kind is not None:
            raise kind(ctx.endpoint, f"{request.name} happened")
        return await super().call(request, ctx)


def named_spec(service: str, handler: str, *methods: str) -> ServiceSpec:
    """A protobuf service ``<service>.<handler>`` whose methods all take helloworld's
    CallRequest and are served by :class:`Named`'s ``call``."""
    return ServiceSpec(
        service=service,
        full_name=f"{service}.{handler}",
        methods={
            m: MethodSpec(m, "call", hello_pb.CallRequest, hello_pb.CallResponse) for m in methods
        },
    )


class Named:
    """Answers ``<service>/<Handler>.<Method>``, so a test sees which RPC a URL reached."""

    def __init__(self, handler: str) -> None:
        self._handler = handler

    async def call(self, request: hello_pb.CallRequest, ctx: CallContext) -> hello_pb.CallResponse:
        return hello_pb.CallResponse(message=f"{ctx.service}/{self._handler}.{ctx.method}")


def _kinds_file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="lab/kinds.proto",
        package="lab",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    color = file.enum_type.add(name="Color")
    color.value.add(name="COLOR_UNKNOWN", number=0)
    color.value.add(name="RED", number=1)
    kinds = file.message_type.add(name="Kinds")
    entry = kinds.nested_type.add(name="CountsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=f.TYPE_INT64, label=f.LABEL_OPTIONAL)
    one, many = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    for name, number, kind, label, type_name in [
        ("big", 1, f.TYPE_INT64, one, ""),
        ("ubig", 2, f.TYPE_UINT64, one, ""),
        ("small", 3, f.TYPE_INT32, one, ""),
        ("ratio", 4, f.TYPE_DOUBLE, one, ""),
        ("flag", 5, f.TYPE_BOOL, one, ""),
        ("blob", 6, f.TYPE_BYTES, one, ""),
        ("color", 7, f.TYPE_ENUM, one, ".lab.Color"),
        ("tags", 8, f.TYPE_STRING, many, ""),
        ("counts", 9, f.TYPE_MESSAGE, many, ".lab.Kinds.CountsEntry"),
        ("child", 10, f.TYPE_MESSAGE, one, ".lab.Kinds"),
        ("at", 11, f.TYPE_MESSAGE, one, ".google.protobuf.Timestamp"),
        ("children", 12, f.TYPE_MESSAGE, many, ".lab.Kinds"),
        ("name", 13, f.TYPE_STRING, one, ""),
    ]:
        added = kinds.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            added.type_name = type_name
    return file


def _kinds_class() -> type[Message]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(_kinds_file().SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lab.Kinds"))


KINDS = _kinds_class()
"""A message with one field of every kind the JSON mapping treats differently."""


def kinds_spec() -> ServiceSpec:
    """``lab.Lab``: ``Mirror`` returns its request, ``Fixed`` returns ``Kinds.answer``."""
    return ServiceSpec(
        service="lab",
        full_name="lab.Lab",
        methods={
            "Mirror": MethodSpec("Mirror", "mirror", KINDS, KINDS),
            "Fixed": MethodSpec("Fixed", "fixed", KINDS, KINDS),
        },
    )


@dataclass
class Kinds:
    """The lab handler; ``answer`` is what Fixed answers."""

    answer: Message = field(default_factory=KINDS)

    async def mirror(self, request: Message, ctx: CallContext) -> Message:
        return request

    async def fixed(self, request: Message, ctx: CallContext) -> Message:
        return self.answer


@dataclass(frozen=True)
class Served:
    """A handler to serve, with the endpoints its access rules make public."""

    spec: ServiceSpec
    handler: object
    public: Sequence[str] = ()


def build_app(*served: Served, **options: Any) -> tuple[Starlette, Metrics]:
    """An application serving ``served`` through real dispatchers, in process."""
    transport = InProcessTransport()
    metrics = options.pop("metrics", None) or Metrics()
    for item in served:
        transport.register(
            Dispatcher(
                item.spec,
                item.handler,
                authenticator=Tokens(),
                rules=Rules(item.public),
                observer=metrics,
            )
        )
    specs = directory(*(item.spec for item in served))
    return create_app(
        specs, options.pop("transport", transport), metrics=metrics, **options
    ), metrics


def client_for(app: Starlette, peer: str = "203.0.113.7") -> httpx.AsyncClient:
    """An HTTP client calling ``app`` directly, as if from ``peer``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 40000)), base_url="http://gateway"
    )
