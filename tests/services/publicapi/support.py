"""Helpers of the publicapi tests: accounts, call contexts, descriptors, the world."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

from m3o.events.publicapi import TOPIC, Event, EventType
from m3o.runtime.auth import Account, CallContext
from m3o.runtime.counters import CounterStore
from m3o.runtime.rpc.fakes import FakePublisher
from m3o.runtime.store import SessionFactory
from m3o.services.helloworld.catalog import descriptor_set
from m3o.services.publicapi.catalog_version import VERSION_KEY
from m3o.services.publicapi.handler import Publicapi
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.reflection import ReflectionError
from support.services import TickingClock

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="v1", type="service", scopes=("service",))
CUSTOMER = Account(id="cust-1", type="customer", scopes=("customer",))
START = datetime(2024, 1, 1, tzinfo=UTC)
HELLOWORLD = descriptor_set()
"""Helloworld's descriptors: helloworld.Helloworld with Call and Stream (server-streaming)."""


TWO_SERVICES_PROTO = """\
syntax = "proto3";

// The greeting API.
package helloworld;

import "google/protobuf/timestamp.proto";

// Helloworld greets.
service Helloworld {
  // Call greets once.
  rpc Call(CallRequest) returns (CallResponse);
  // Chat greets back every message.
  rpc Chat(stream ChatMessage) returns (stream ChatMessage);
}

// Greeter greets politely.
service Greeter {
  rpc Greet(CallRequest) returns (CallResponse);
}

// Mood of a greeting.
enum Mood {
  MOOD_UNKNOWN = 0;
  MOOD_HAPPY = 1;
}

// CallRequest names who to greet.
message CallRequest {
  // name of the person to greet
  string name = 1;
  // times to greet
  int64 times = 2;
  repeated string tags = 3;
  map<string, int32> counts = 4;
  Mood mood = 5;
  bytes avatar = 6;
  google.protobuf.Timestamp at = 7;
  // Nested options.
  message Options {
    bool loud = 1;
  }
  Options options = 8;
}

// CallResponse carries the greeting.
message CallResponse {
  // message is "Hello <name>"
  string message = 1;
  CallResponse reply = 2;
}

message ChatMessage {
  string text = 1;
}
"""


def compile_proto(folder: Path, source: str, name: str = "greeting/api.proto") -> bytes:
    """``source`` compiled by protoc with its comments, as a serialized FileDescriptorSet
    (imports not included, as ``protoc --descriptor_set_out`` writes it by default)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    out = folder / (name.replace("/", "_") + ".pb")
    include = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        ["protoc", f"-I{folder}", f"-I{include}", "--include_source_info",
         f"--descriptor_set_out={out}", name]
    )  # fmt: skip
    assert code == 0, f"protoc failed on {name}"
    return out.read_bytes()


def call(method: str, account: Account | None = ADMIN) -> CallContext:
    return CallContext(service="publicapi", method=method, account=account)


def api(name: str = "helloworld", **fields: object) -> pb.PublicAPI:
    """An entry with helloworld's descriptors on a local upstream, plus ``fields``."""
    values: dict[str, object] = {
        "name": name,
        "upstream": pb.Upstream(address="local:helloworld", protocol="grpc"),
        "descriptors": HELLOWORLD,
    }
    values.update(fields)
    return pb.PublicAPI(**values)  # type: ignore[arg-type]


@dataclass
class FakeFetcher:
    """Answers reflection with ``descriptors`` for the addresses it knows, else fails."""

    descriptors: dict[str, bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, address: str) -> bytes:
        self.asked.append(address)
        found = self.descriptors.get(address)
        if found is None:
            raise ReflectionError(f"Upstream {address} is unreachable")
        return found


@dataclass
class World:
    handler: Publicapi
    publisher: FakePublisher
    fetcher: FakeFetcher
    counters: CounterStore
    sessions: SessionFactory
    clock: TickingClock

    def events(self) -> list[tuple[EventType.ValueType, str]]:
        """(type, name) of every event published, in order."""
        found: list[tuple[EventType.ValueType, str]] = []
        for event in self.publisher.events(TOPIC):
            assert isinstance(event, Event)
            data = event.api_enable.name or event.api_disable.name or event.api_update.name
            found.append((event.type, data))
        return found

    def assert_all_in_transaction(self) -> None:
        assert self.publisher.published
        assert all(p.in_transaction for p in self.publisher.published)

    async def version(self) -> int:
        return await self.counters.get(VERSION_KEY)

    async def publish(self, entry: pb.PublicAPI | None = None) -> pb.PublicAPI:
        """Publish ``entry`` (helloworld by default) as the admin; events forgotten."""
        response = await self.handler.publish(
            pb.PublishRequest(api=entry or api()), call("Publish")
        )
        self.publisher.published.clear()
        return response.api
