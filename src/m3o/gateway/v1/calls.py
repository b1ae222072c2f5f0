"""The steps every public API call takes, over HTTP or a websocket.

1. :meth:`PublicCalls.prepare`: the path names an API and endpoint (NotFound), the key is
   known (Unauthorized), not blocked and in scope (Forbidden ``v1.blocked``), the API is
   published (NotFound ``No such API``) and has that endpoint (NotFound);
2. :meth:`PublicCalls.upstream_metadata`: the key's short-lived token, the request id and
   (tracing on) the W3C ``traceparent``, all an upstream receives (never the caller's key
   or headers);
3. admission (:class:`~m3o.gateway.v1.gate.Gate`), then the forwarder;
4. :meth:`PublicCalls.charged` commits a call once its 2xx answer has been handed over,
   in the background (the answer never waits for it): its hold is marked served with its
   requests/Request event in one atomic step (see :mod:`~m3o.gateway.v1.holds`), then
   the event is published (on the platform profile, the event is published and the hold
   removed in that one step); a commit that fails, or finds the hold released, releases
   the reservation: the call was answered free. :meth:`PublicCalls.failed` releases the
   reservation of a call that did not succeed and says what the caller is told.

   With :class:`~m3o.gateway.v1.ports.ServedCharges` (the ``local`` profile) the order is
   the other way round: :meth:`PublicCalls.charge_first` commits the charge and its event
   together, and only then is the answer sent (:attr:`PublicCalls.charges_first`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from m3o.events.requests import TOPIC, Event, EventType, Request
from m3o.gateway.v1.credentials import KeyCache
from m3o.gateway.v1.forwarders import Forwarders
from m3o.gateway.v1.gate import Admission, Gate, check_key
from m3o.gateway.v1.metering import NAMESPACE, RequestLog
from m3o.gateway.v1.paths import CallPath, parse_path
from m3o.gateway.v1.ports import Alerts, ApiKey, PlannedCall, ServedCharges
from m3o.gateway.v1.targets import Target, Targets
from m3o.gateway.v1.tokens import UpstreamTokens
from m3o.gateway.v1.upstream import Codec, public_error
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Envelope
from m3o.runtime.logging import get_logger
from m3o.runtime.logging.tracing import inject

__all__ = ["Prepared", "PublicCalls"]

_log = get_logger(__name__)

MAX_CACHED_PATHS = 10_000
"""Parsed paths kept (the same few paths are called over and over)."""
MAX_CACHED_PLANS = 100_000
"""Prepared calls kept, one per key and path (see :meth:`PublicCalls.prepare`)."""
PANIC = "panic"
"""Alert category of an upstream crash."""
_REQUEST = EventType.EventTypeRequest
"""Read once: a protobuf enum's attribute costs about as much as the event it types."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A call that passed every check before admission, and what its admission needs."""

    key: ApiKey
    target: Target
    codec: Codec
    path: str
    """The URL path, without the query (``/v1/helloworld/call``)."""
    call: PlannedCall
    event: Event
    """The requests/Request event of a served call, with what does not change from call to
    call (copied and completed by each call: 1 µs, against 4 to build it anew)."""

    @property
    def label(self) -> str:
        """A bounded name for metrics and logs (``/v1/helloworld/Helloworld.Call``)."""
        return f"/v1/{self.target.api}/{self.target.endpoint}"


class PublicCalls:
    def __init__(
        self,
        *,
        keys: KeyCache,
        targets: Targets,
        gate: Gate,
        forwarders: Forwarders,
        tokens: UpstreamTokens,
        requests: RequestLog,
        alerts: Alerts | None = None,
        upstream_timeout: float | None,
        served: ServedCharges | None = None,
    ) -> None:
        self.gate = gate
        self.forwarders = forwarders
        self.upstream_timeout = upstream_timeout
        self._keys = keys
        self._targets = targets
        self._tokens = tokens
        self._requests = requests
        self._alerts = alerts
        self._served = served
        self._background: set[asyncio.Task[None]] = set()
        self._commits: set[asyncio.Future[bool]] = set()
        self._paths: dict[str, CallPath] = {}
        self._plans: dict[tuple[str, str], Prepared] = {}

    async def prepare(self, path: str, call_path: str, api_key: str | None) -> Prepared:
        """``path`` is the full URL path, ``call_path`` what follows ``/v1/``.

        A key calls the same few paths over and over, so what passed is kept per key and
        path and used again while it still holds: while the key cache gives the same key
        record (a record is read again after ``v1.key_cache_ttl``, so a blocked or
        re-scoped key is seen as soon as it would be without this) and the catalog the
        same entry (a published change is seen at once)."""
        parsed = self._paths.get(call_path)
        if parsed is None:
            parsed = parse_path(call_path)
            if len(self._paths) >= MAX_CACHED_PATHS:
                self._paths.clear()
            self._paths[call_path] = parsed
        key = await self._keys.authenticate(api_key)
        plans = self._plans
        found = plans.get((key.id, call_path))
        if found is not None and found.key is key and self._targets.current(found.target):
            return found
        check_key(key, parsed.api)
        target = self._targets.resolve(parsed)
        prepared = Prepared(
            key,
            target,
            self.forwarders.codec(target),
            path,
            self.gate.plan(key, target),
            _event_of(key, target, path),
        )
        if len(plans) >= MAX_CACHED_PLANS:
            plans.clear()
        plans[(key.id, call_path)] = prepared
        return prepared

    async def admit(self, prepared: Prepared) -> Admission:
        """Admission of a prepared call (:meth:`Gate.admit`)."""
        return await self.gate.admit(prepared.call, prepared.target)

    async def upstream_metadata(self, prepared: Prepared, request_id: str) -> dict[str, str]:
        token = await self._tokens.token(prepared.key.id)
        metadata = {"authorization": f"Bearer {token}", "x-request-id": request_id}
        inject(metadata)  # the forwarders' own span replaces it for unary calls
        return metadata

    def charged(
        self,
        prepared: Prepared,
        admission: Admission,
        *,
        status: int,
        started: float,
        request_id: str,
    ) -> None:
        """A call was answered with a 2xx (charged ``admission.charge``): commit it with
        its event in the background, not tied to the caller's task. A commit that fails or
        finds the hold released releases the call (answered free, never charged)."""
        if self._served is not None:
            self._spawn(
                self.charge_first(
                    prepared, admission, status=status, started=started, request_id=request_id
                )
            )
            return
        envelope = _envelope(prepared, admission, status, started, request_id)
        hold = admission.request.hold if admission.request is not None else None
        if hold is None:
            self._requests.record_served(envelope, None)
            return
        commit = self.gate.commit_soon(hold, envelope)
        if not self.gate.commits_publish:
            self._requests.record_committed(commit, envelope, hold)
        self._commits.add(commit)
        commit.add_done_callback(functools.partial(self._committed, admission, request_id))

    @property
    def charges_first(self) -> bool:
        """Whether a call's charge is committed before its answer is sent
        (:meth:`charge_first`), rather than after it (:meth:`charged`)."""
        return self._served is not None

    async def charge_first(
        self,
        prepared: Prepared,
        admission: Admission,
        *,
        status: int,
        started: float,
        request_id: str,
    ) -> None:
        """A call the upstream served (its answer not sent yet): commit its charge and its
        event together, and return once they are durable. A commit that fails leaves the
        call released (answered free), as :meth:`ServedCharges.commit` says."""
        envelope = _envelope(prepared, admission, status, started, request_id)
        if admission.request is None or self._served is None:
            self._requests.record_served(envelope, None)
            return
        try:
            await self._served.commit(admission.request, admission.decision, envelope)
        except M3OError as exc:
            _log.warning(
                "v1.commit_failed",
                request_id=request_id,
                charge=admission.charge,
                error=exc.detail,
            )

    def _committed(
        self, admission: Admission, request_id: str, commit: asyncio.Future[bool]
    ) -> None:
        self._commits.discard(commit)
        if commit.cancelled():
            error = "cancelled"
        elif (exc := commit.exception()) is not None:
            error = exc.detail if isinstance(exc, M3OError) else type(exc).__name__
        elif commit.result():
            return
        else:
            error = "hold released"
        _log.warning(
            "v1.commit_failed", request_id=request_id, charge=admission.charge, error=error
        )
        self.release_later(admission)

    async def failed(
        self, prepared: Prepared, admission: Admission, exc: BaseException, request_id: str
    ) -> M3OError:
        """Release what the call reserved; the error the caller gets. A crash is logged
        with its cause and reported to operators."""
        await self.gate.release(admission)
        return self.describe(prepared, exc, request_id)

    def describe(self, prepared: Prepared, exc: BaseException, request_id: str) -> M3OError:
        """The error the caller gets for an upstream failure (a crash is logged and
        reported to operators)."""
        error, crashed = public_error(exc)
        if crashed:
            _log.error(
                "v1.upstream_crashed",
                api=prepared.target.api,
                endpoint=prepared.target.endpoint,
                request_id=request_id,
                exc_info=exc,
            )
            self._alert(prepared, exc)
        elif not isinstance(exc, M3OError):
            _log.warning(
                "v1.upstream_failed",
                api=prepared.target.api,
                endpoint=prepared.target.endpoint,
                request_id=request_id,
                error=type(exc).__name__,
            )
        return error

    def release_later(self, admission: Admission) -> None:
        """Release in the background (the call's own task is being cancelled)."""
        self._spawn(self.gate.release(admission))

    def _alert(self, prepared: Prepared, exc: BaseException) -> None:
        alerts = self._alerts
        if alerts is None:
            return
        metadata = {"error": str(exc) or type(exc).__name__}

        async def report() -> None:
            try:
                await alerts.report(PANIC, prepared.path, prepared.key.owner, metadata)
            except Exception as failure:  # noqa: BLE001 - an alert must not fail a call
                _log.warning("v1.alert_failed", error=str(failure))

        self._spawn(report())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the commits of answered calls, the background releases and alerts
        (shut-down): a graceful stop charges every call it answered."""
        while self._background or self._commits:
            pending: set[asyncio.Future[Any]] = {*self._background, *self._commits}
            await asyncio.wait(pending)


def _event_of(key: ApiKey, target: Target, path: str) -> Event:
    """What a key's served calls to one path have in common in their event."""
    project = key.owner
    request = Request(
        user_id=project,
        namespace=NAMESPACE,
        api_key_id=key.id,
        url=path,
        api_name=target.api,
        endpoint_name=target.endpoint,
        project_id=project,
    )
    return Event(type=_REQUEST, request=request)


def _envelope(
    prepared: Prepared, admission: Admission, status: int, started: float, request_id: str
) -> Envelope:
    """The requests/Request event of a served call."""
    event = Event()
    event.CopyFrom(prepared.event)
    request = event.request
    request.price = admission.charge
    request.status_code = status
    request.duration_ms = round((time.perf_counter() - started) * 1000)
    request.request_id = request_id
    return Envelope.wrap(TOPIC, event, given=True)  # made for it, never changed again
