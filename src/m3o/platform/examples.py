"""The example API of the local profile: helloworld, published on first start.

Published once: an operator's later changes to the entry (prices, quotas) survive
restarts. Remove it with ``publicapi.Remove``; it comes back at the next start.
"""

from __future__ import annotations

from m3o.runtime.errors import NotFound
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Clients
from m3o.services.helloworld import catalog
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.client import PublicapiClient

__all__ = ["publish_examples"]

_log = get_logger(__name__)


async def publish_examples(clients: Clients) -> None:
    """Publish helloworld unless the catalog has it."""
    publicapi = clients.get(PublicapiClient)
    try:
        await publicapi.get(publicapi_pb.GetRequest(name=catalog.NAME))
    except NotFound:
        await publicapi.publish(catalog.publish_request())
        _log.info("example.published", api=catalog.NAME)
