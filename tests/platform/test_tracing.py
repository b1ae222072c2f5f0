"""A traced public API call in the platform profile: one trace across processes.

Every service the public API needs runs as its own `m3o run <service>` process over unix
sockets and one `m3o run gateway` serves HTTP, all exporting spans over OTLP/HTTP to a fake
collector. One `/v1/helloworld/call` then makes one trace: the gateway's HTTP span, auth
granting the key's upstream token, helloworld serving the forwarded call, and usage
handling the call's request event (which crossed a Redis stream), each span exported by
its own process under its own service name.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.services.helloworld import catalog
from support.backends import REDIS_URL
from support.http_fakes import served
from support.platform import (
    SERVICES,
    Api,
    Process,
    assert_no_logged_errors,
    free_port,
    migrate,
    new_customer,
    platform_env,
    start,
    stop,
    until,
    until_serving,
)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "tracing-admin-password"
REQUEST_ID = "traced-call"


class Collector:
    """A fake OTLP/HTTP collector: every span posted, by the service name that sent it."""

    def __init__(self) -> None:
        self.spans: dict[str, list[Span]] = defaultdict(list)
        self.app = Starlette(routes=[Route("/v1/traces", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        exported = ExportTraceServiceRequest.FromString(await request.body())
        for resource in exported.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                self.spans[attributes["service.name"]].extend(scope.spans)
        return Response(b"", media_type="application/x-protobuf")


def attribute(span: Span, key: str) -> str:
    for found in span.attributes:
        if found.key == key:
            return str(found.value.string_value or found.value.int_value)
    return ""


async def test_one_public_call_is_one_trace_across_the_platforms_processes(
    database: str, workdir: Path, redis_db: redis.Redis, tmp_path: Path
) -> None:
    collector = Collector()
    sockets = workdir / "s"
    sockets.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with served(collector.app) as collector_url:
        env = platform_env(
            database,
            REDIS_URL,
            sockets,
            "tracing-service-secret",
            admin_password=ADMIN_PASSWORD,
            M3O_SERVER__LOG_LEVEL="warning",
            M3O_TRACING__OTLP_ENDPOINT=f"{collector_url}/v1/traces",
        )
        migrate(env)
        services = [start(name, env, logs) for name in SERVICES]
        gateways: list[Process] = []
        try:
            gateways = [start("gateway", {**env, "M3O_SERVER__PORT": str(port)}, logs)]
            await until_serving(sockets, SERVICES, url)
            async with httpx.AsyncClient(timeout=30) as client:
                api = Api(client, url, ADMIN_PASSWORD)

                async def admin_ready() -> bool:
                    await api.log_in_admin()
                    return True

                await until(admin_ready, "admin account")
                await api.as_admin("/publicapi/publish", message_to_dict(catalog.publish_request()))
                customer = await new_customer(api, "traced", 1_000_000)
                answered: list[str] = []

                async def called() -> bool:
                    request_id = f"{REQUEST_ID}-{len(answered)}"
                    response = await client.post(
                        f"{url}/v1/helloworld/call",
                        json={"name": "Ann"},
                        headers={
                            "Authorization": f"Bearer {customer.key}",
                            "X-Request-Id": request_id,
                        },
                    )
                    answered.append(request_id if response.status_code == 200 else "")
                    return response.status_code == 200

                await until(called, "the published API answering")

                async def usage_counted() -> bool:
                    monthly = await api.as_admin(
                        "/usage/readMonthlyTotal", {"customer_id": customer.id}
                    )
                    return int(monthly.get("requests", 0)) >= 1

                await until(usage_counted, "usage counting the call")
        finally:
            # every process exports what it holds as it stops
            problems = stop(gateways) + stop(list(reversed(services)))
    assert not problems, "\n".join(problems)
    assert_no_logged_errors([*services, *gateways])

    [gateway] = [
        s
        for s in collector.spans["m3o-gateway"]
        if s.kind == Span.SPAN_KIND_SERVER and attribute(s, "m3o.request_id") == answered[-1]
    ]
    assert attribute(gateway, "http.response.status_code") == "200"

    def in_trace(service: str, kind: int) -> list[Span]:
        return [
            s for s in collector.spans[service] if s.trace_id == gateway.trace_id and s.kind == kind
        ]

    assert "auth.Auth/Grant" in {s.name for s in in_trace("m3o-auth", Span.SPAN_KIND_SERVER)}
    [hello] = in_trace("m3o-helloworld", Span.SPAN_KIND_SERVER)
    assert hello.name == "helloworld.Helloworld/Call"
    [upstream] = [
        s for s in in_trace("m3o-gateway", Span.SPAN_KIND_CLIENT) if s.name == "upstream helloworld"
    ]
    assert hello.parent_span_id == upstream.span_id
    # usage counts request events in batches: a batch's span starts a trace of its own,
    # linked to the span each of its events was published in
    [usage] = [
        s
        for s in collector.spans["m3o-usage"]
        if s.kind == Span.SPAN_KIND_CONSUMER
        and attribute(s, "messaging.destination.name") == "requests"
        and any(link.span_id == gateway.span_id for link in s.links)
    ]
    assert usage.trace_id != gateway.trace_id
    assert {link.trace_id for link in usage.links if link.span_id == gateway.span_id} == {
        gateway.trace_id
    }
