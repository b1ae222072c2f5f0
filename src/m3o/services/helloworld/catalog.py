"""Helloworld's catalog entry: what the local profile publishes so it can be called at once.

The entry exercises every admission path: ``Helloworld.Call`` is free (it counts against
the monthly fair-use quota), ``Helloworld.Stream`` has a price and a monthly free quota.
"""

from __future__ import annotations

import base64

import orjson
from google.protobuf import descriptor_pb2

from m3o.services.helloworld.proto import helloworld_pb2
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb

__all__ = [
    "CALL_PRICE",
    "NAME",
    "STREAM_FREE_CALLS",
    "STREAM_PRICE",
    "UPSTREAM",
    "descriptor_set",
    "publish_request",
]

NAME = "helloworld"
UPSTREAM = "local:helloworld"
"""Served by the platform itself (in process in ``m3o serve``)."""
CALL_PRICE = 0
STREAM_PRICE = 10
"""1/10,000ths of a cent."""
STREAM_FREE_CALLS = 100
"""Free ``Helloworld.Stream`` calls per project per month."""

_DESCRIPTION = """\
Helloworld greets whoever calls it: the example API that ships with the platform.

- `Call` returns one greeting.
- `Stream` returns a stream of greetings (served over a websocket).
"""

_ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
    '<circle cx="32" cy="32" r="30" fill="#3b82f6"/>'
    '<text x="32" y="42" font-size="28" text-anchor="middle" fill="#fff" '
    'font-family="sans-serif">hi</text></svg>'
)
_ICON = "data:image/svg+xml;base64," + base64.b64encode(_ICON_SVG.encode()).decode()

_EXAMPLES = {
    "call": [
        {
            "title": "Call helloworld",
            "run_check": True,
            "request": {"name": "Alice"},
            "response": {"message": "Hello Alice"},
        }
    ],
    "stream": [
        {
            "title": "Stream greetings",
            "run_check": False,
            "request": {"name": "Alice", "messages": 2},
            "response": {"message": "Hello Alice"},
        }
    ],
}


def descriptor_set() -> bytes:
    """Helloworld's protobuf descriptors, a serialized FileDescriptorSet."""
    file = descriptor_pb2.FileDescriptorProto()
    helloworld_pb2.DESCRIPTOR.CopyToProto(file)
    return descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString()


def publish_request() -> publicapi_pb.PublishRequest:
    """The publicapi Publish request of helloworld for the local profile."""
    return publicapi_pb.PublishRequest(
        api=publicapi_pb.PublicAPI(
            name=NAME,
            display_name="Helloworld",
            description=_DESCRIPTION,
            category="example",
            icon=_ICON,
            examples_json=orjson.dumps(_EXAMPLES).decode(),
            pricing={"Helloworld.Call": CALL_PRICE, "Helloworld.Stream": STREAM_PRICE},
            quotas={"Helloworld.Stream": STREAM_FREE_CALLS},
            upstream=publicapi_pb.Upstream(address=UPSTREAM, protocol="grpc"),
            descriptors=descriptor_set(),
        )
    )
