"""Where batches go: Mixpanel's import API over httpx, or the local sink.

Mixpanel's official Python library is synchronous (its consumer blocks the event loop) and
barely maintained, so batches are posted with httpx through
:func:`m3o.runtime.outbound.send_with_retries`: ``POST /import?strict=1&project_id=...``,
HTTP basic auth with the service account (user and secret), a JSON array of at most 2000
events. Timeouts, failed connections, 429 and 5xx are tried again with backoff; any other
non-2xx (with ``strict=1``, a batch Mixpanel finds invalid is a 400) fails at once.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import httpx
import orjson

from m3o.runtime.config import Config
from m3o.runtime.logging import get_logger
from m3o.runtime.outbound import Retries, send_with_retries

__all__ = [
    "KEPT_BATCHES",
    "Importer",
    "LocalImporter",
    "MixpanelImporter",
    "MixpanelSettings",
    "importer_from",
]

_log = get_logger(__name__)
_SERVICE = "mixpanel"


class Importer(Protocol):
    @property
    def wants_data(self) -> bool:
        """Whether each event must carry its ``data`` (the event in M3O's JSON mapping):
        Mixpanel's import does; the local sink only counts events by name, and mapping an
        event costs more than everything else the forwarder does with it."""
        ...

    async def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Sends one batch; raises when it was not accepted."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MixpanelSettings:
    api_url: str
    project: str
    user: str
    secret: str
    timeout: timedelta
    retries: Retries = field(default_factory=Retries)


class MixpanelImporter:
    def __init__(self, settings: MixpanelSettings) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.api_url,
            auth=httpx.BasicAuth(settings.user, settings.secret),
            timeout=settings.timeout.total_seconds(),
        )
        self._params = {"strict": "1", "project_id": settings.project}

    @property
    def wants_data(self) -> bool:
        return True

    async def send(self, events: Sequence[dict[str, Any]]) -> None:
        body = orjson.dumps(list(events))
        await send_with_retries(
            lambda: self._http.post(
                "/import",
                params=self._params,
                content=body,
                headers={"Content-Type": "application/json"},
            ),
            service=_SERVICE,
            retries=self._settings.retries,
        )
        _log.debug("mixpanel.imported", events=len(events))

    async def close(self) -> None:
        await self._http.aclose()


KEPT_BATCHES = 100
"""Batches the local sink keeps (the newest): every metered call makes an event."""


class LocalImporter:
    """Mixpanel enabled without a project, user or secret (disabled, the service consumes
    nothing and has no importer): each batch is logged (how many events of each name) and
    the newest :data:`KEPT_BATCHES` are kept in ``batches``, without their ``data``
    (:attr:`wants_data`), so the platform works offline (and its memory does not grow
    with the calls it serves)."""

    def __init__(self, keep: int = KEPT_BATCHES) -> None:
        self.batches: deque[list[dict[str, Any]]] = deque(maxlen=keep)

    @property
    def wants_data(self) -> bool:
        return False

    async def send(self, events: Sequence[dict[str, Any]]) -> None:
        self.batches.append(list(events))
        names = Counter(str(e["event"]) for e in events)
        _log.info("mixpanel.local_batch", events=len(events), names=dict(names))

    async def close(self) -> None:
        return None


def importer_from(config: Config) -> Importer:
    """Mixpanel when enabled with a project, user and secret; else the local sink (which
    the service uses only when enabled: disabled, it consumes nothing)."""
    section = config.mixpanel
    secret = section.secret.get_secret_value()
    if not (section.enabled and section.project and section.user and secret):
        if section.enabled:
            _log.warning("mixpanel.unconfigured", detail="project, user or secret missing")
        return LocalImporter()
    return MixpanelImporter(
        MixpanelSettings(
            api_url=section.api_url.rstrip("/"),
            project=section.project,
            user=section.user,
            secret=secret,
            timeout=section.timeout,
        )
    )
