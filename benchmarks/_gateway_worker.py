"""The gateway process of benchmarks/gateway.py: `m3o serve` or `m3o run gateway`, exactly as
shipped, plus one route with every check off.

    python benchmarks/_gateway_worker.py serve --data-dir D --port P   # local profile
    python benchmarks/_gateway_worker.py run gateway                   # platform profile

``build_front`` is wrapped (in this process only) so that the front it builds also serves
``POST /bench-off/<anything>``: the same application, middleware, uvicorn server and event
loop as the public API, forwarding the JSON body to ``M3O_BENCH_UPSTREAM`` with the
gateway's own :class:`~m3o.gateway.v1.forward_http.HttpForwarder` and
:class:`~m3o.gateway.v1.upstream.JsonCodec`, the way ``/v1`` forwards to an ``http``
upstream, but with no key, catalog, token, admission or metering. Comparing the two routes
in one process therefore measures what the checks cost and nothing else.

Profiling on request (``M3O_BENCH_PROFILER`` = ``cprofile`` or ``pyinstrument``, output in
``M3O_BENCH_PROFILE_OUT``): SIGUSR1 starts the profiler, SIGUSR2 stops it and writes the
output, so the profile covers the load run only.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from m3o.gateway.context import new_request_id, request_id, set_route_label
from m3o.gateway.http_errors import error_response
from m3o.gateway.payload import read_body
from m3o.gateway.v1.forward_http import HttpForwarder
from m3o.gateway.v1.http_endpoint import request_json
from m3o.gateway.v1.paths import ERROR_ID
from m3o.gateway.v1.ports import CatalogEntry
from m3o.gateway.v1.targets import HTTP, Target
from m3o.gateway.v1.upstream import JsonCodec
from m3o.platform import front, local
from m3o.runtime.errors import M3OError

OFF_PATH = "/bench-off"
UPSTREAM_TIMEOUT = 30.0
"""Seconds, as ``v1.upstream_timeout``'s default."""
MAX_BODY_BYTES = 1024 * 1024
"""As the front's ``max_body_bytes`` default."""


@dataclass(frozen=True)
class _Upstream:
    address: str


@dataclass(frozen=True)
class _Entry:
    """All of a catalog entry the HTTP forwarder reads: the upstream's address."""

    upstream: _Upstream


class ChecksOff:
    """``/bench-off/...``: read the body, encode it, forward it, answer what came back."""

    def __init__(self, upstream: str) -> None:
        self._codec = JsonCodec()
        self._target = Target(
            api="bench",
            endpoint="Helloworld.Call",
            entry=cast(CatalogEntry, _Entry(_Upstream(upstream))),
            kind=HTTP,
            service="helloworld.Helloworld",
            method="Call",
        )
        self._forwarder: HttpForwarder | None = None

    async def handle(self, request: Request) -> Response:
        if self._forwarder is None:
            self._forwarder = HttpForwarder()
        rid = request_id(request.scope) or new_request_id(None)
        set_route_label(request.scope, OFF_PATH)
        try:
            body = await read_body(request, MAX_BODY_BYTES, ERROR_ID)
            payload = self._codec.from_json(request_json(body, [], None))
            answer = await self._forwarder.unary(
                self._target, payload, {"x-request-id": rid}, UPSTREAM_TIMEOUT
            )
            return Response(self._codec.to_json(answer), media_type="application/json")
        except M3OError as error:
            return error_response(error)

    async def close(self) -> None:
        if self._forwarder is not None:
            await self._forwarder.close()


_original_build_front = front.build_front


def _build_front_with_checks_off(**kwargs: Any) -> Any:
    off = ChecksOff(os.environ["M3O_BENCH_UPSTREAM"])
    kwargs["on_shutdown"] = [*kwargs.get("on_shutdown", ()), off.close]
    app = _original_build_front(**kwargs)
    # First, so that the platform API's /{service}/{endpoint} does not take it.
    app.router.routes.insert(0, Route(OFF_PATH + "/{path:path}", off.handle, methods=["POST"]))
    return app


def _install_profiler(kind: str, out: str) -> None:
    state: dict[str, Any] = {}

    def start(signum: int, frame: object) -> None:
        if kind == "cprofile":
            import cProfile

            state["profiler"] = profiler = cProfile.Profile()
            profiler.enable()
        else:
            profiler_class = importlib.import_module("pyinstrument").Profiler

            state["profiler"] = profiler = profiler_class(interval=0.0005, async_mode="disabled")
            profiler.start()

    def stop(signum: int, frame: object) -> None:
        profiler = state.pop("profiler", None)
        if profiler is None:
            return
        if kind == "cprofile":
            profiler.disable()
            profiler.dump_stats(out)
        else:
            profiler.stop()
            with open(out, "w") as file:
                file.write(profiler.output_text(unicode=True, color=False, show_all=False))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def main() -> None:
    # Where `m3o serve` looks the function up, and where `m3o run gateway` imports it from
    # when it starts.
    setattr(local, "build_front", _build_front_with_checks_off)  # noqa: B010
    setattr(front, "build_front", _build_front_with_checks_off)  # noqa: B010
    profiler = os.environ.get("M3O_BENCH_PROFILER", "")
    if profiler:
        _install_profiler(profiler, os.environ["M3O_BENCH_PROFILE_OUT"])
    from m3o.cli import main as m3o

    sys.argv = ["m3o", *sys.argv[1:]]
    m3o()


if __name__ == "__main__":
    main()
