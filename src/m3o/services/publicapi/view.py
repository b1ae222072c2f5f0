"""The catalog in process memory, for the gateway's hot path.

:class:`CatalogView` holds every entry (from ``publicapi.List``, called with the owning
process's service account, so upstreams and descriptors are included). It reloads

- when the counter ``publicapi:version`` changes (publicapi raises it after every
  committed Publish, Update and Remove), polled every second: a change reaches every
  gateway within about a second;
- every minute in any case, the safety net for a raise that was lost.

Documents (OpenAPI, examples, Postman) are not fetched: the gateway needs none. A failed
reload keeps the entries it had and is tried again at the next poll. Lookups
(:meth:`get`, :meth:`price`, :meth:`quota`) are plain dictionary reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta

from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.services.publicapi.catalog_version import VERSION_KEY
from m3o.services.publicapi.descriptors import Endpoint
from m3o.services.publicapi.entry import CatalogEntry
from m3o.services.publicapi.proto import publicapi_pb2 as pb
from m3o.services.publicapi.proto.client import PublicapiService
from m3o.services.publicapi.validation import Upstream

__all__ = [
    "FIRST_LOAD_WAIT",
    "FULL_REFRESH",
    "POLL_INTERVAL",
    "VERSION_KEY",
    "CatalogEntry",
    "CatalogView",
    "Endpoint",
    "Upstream",
]

POLL_INTERVAL = timedelta(seconds=1)
FULL_REFRESH = timedelta(seconds=60)
FIRST_LOAD_WAIT = timedelta(seconds=2)
"""How long :meth:`CatalogView.start` waits for the first load by default: a reachable
publicapi answers within milliseconds; an unreachable one would hold a gateway's start for
the whole of the call's deadline (10 s), where it can listen and say it is not ready."""

_log = get_logger(__name__)


class CatalogView:
    """Every catalog entry in memory, kept fresh by :meth:`start` until :meth:`stop`."""

    def __init__(
        self,
        client: PublicapiService,
        counters: CounterStore,
        *,
        poll_interval: timedelta = POLL_INTERVAL,
        full_refresh: timedelta = FULL_REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._counters = counters
        self._poll_interval = poll_interval.total_seconds()
        self._full_refresh = full_refresh.total_seconds()
        self._clock = clock
        self._entries: dict[str, CatalogEntry] = {}
        self._version: int | None = None
        self._loaded_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        """Whether a load has succeeded yet."""
        return self._loaded_at is not None

    def get(self, api_name: str) -> CatalogEntry | None:
        """The entry of ``api_name`` (any case), None when the catalog has no such API."""
        return self._entries.get(api_name.lower())

    def entries(self) -> list[CatalogEntry]:
        """Every entry, sorted by name."""
        return [self._entries[name] for name in sorted(self._entries)]

    def price(self, api_name: str, endpoint: str) -> int:
        """Price of one call to ``endpoint`` of ``api_name`` (case-insensitive); 0 if none."""
        entry = self.get(api_name)
        return 0 if entry is None else entry.price(endpoint)

    def quota(self, api_name: str, endpoint: str) -> int:
        """Free monthly calls to ``endpoint`` of ``api_name`` (case-insensitive); 0 if none."""
        entry = self.get(api_name)
        return 0 if entry is None else entry.quota(endpoint)

    async def start(self, first_load_wait: timedelta | None = FIRST_LOAD_WAIT) -> None:
        """Start polling, with a first load at once (a failure is logged and retried by the
        poller). Returns when that load has been tried, or after ``first_load_wait`` (None:
        however long it takes) while it is still waiting for publicapi; :attr:`loaded` says
        when it is done."""
        if self._task is not None:
            return
        tried = asyncio.Event()
        self._task = task = asyncio.create_task(self._run(tried), name="publicapi-catalog-view")
        wait = None if first_load_wait is None else first_load_wait.total_seconds()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await tried.wait()
        if task.done():  # the first load raised what no poll should: the caller's to see
            task.result()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> None:
        """Reload every entry now; raises what the publicapi client raises."""
        async with self._lock:
            await self._reload(await self._read_version())

    async def poll(self) -> bool:
        """Reload if the version changed or the last load is a minute old; True if it
        reloaded. Failures are logged; the entries stay as they were."""
        try:
            version = await self._read_version()
        except M3OError as exc:
            _log.warning("publicapi.view_version_unreadable", error=exc.detail)
            version = None
        async with self._lock:
            if not self._due(version):
                return False
            try:
                await self._reload(version)
            except M3OError as exc:
                _log.warning("publicapi.view_reload_failed", error=exc.detail)
                return False
        return True

    def _due(self, version: int | None) -> bool:
        if self._loaded_at is None:
            return True
        if version is not None and version != self._version:
            return True
        return self._clock() - self._loaded_at >= self._full_refresh

    async def _read_version(self) -> int:
        return await self._counters.get(VERSION_KEY)

    async def _reload(self, version: int | None) -> None:
        # The version is read before listing: a change committed meanwhile raises it
        # again, so the next poll reloads.
        response = await self._client.list(pb.ListRequest(omit_documents=True))
        previous = self._entries
        self._entries = {
            api.name.lower(): CatalogEntry.from_proto(api, previous.get(api.name.lower()))
            for api in response.apis
        }
        self._version = version
        self._loaded_at = self._clock()
        _log.debug("publicapi.view_reloaded", apis=len(self._entries), version=version)

    async def _run(self, tried: asyncio.Event) -> None:
        try:
            await self.poll()
        finally:
            tried.set()
        while True:
            await asyncio.sleep(self._poll_interval)
            await self.poll()
