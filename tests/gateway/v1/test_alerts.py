"""An upstream crash is reported to the alerts service (stored there and posted), and a
report that fails never changes the caller's answer."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from gateway.v1.support import CUSTOMER, KEY, PROJECT, Catalog, gateway, hello_entry
from m3o.gateway.v1.alerts import ReportedAlerts
from m3o.runtime.auth import Account
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.client import SPEC, AlertsClient
from m3o.services.alerts.proto.fakes import FakeAlertsClient
from m3o.services.balance.hot import hot_key
from services.alerts.support import Recorder, alerts, call
from support.services import EveryTokenIs, serve

AUTH = {"Authorization": f"Bearer {KEY}"}
GATEWAY = Account(id="gateway", type="service", scopes=("service",))
CRASHED = "Error processing request. If the problem persists please contact support"


async def test_an_upstream_crash_is_stored_and_posted_by_the_alerts_service(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    counters = SqlCounterStore(engine)
    posted = Recorder()
    handler = alerts(sessions, counters, [posted])
    client = AlertsClient(
        serve(SPEC, handler, authenticator=EveryTokenIs(GATEWAY)), StaticToken("gateway")
    )
    gw = gateway(
        counters,
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": 10})),
        balances={CUSTOMER: 100},
        reporter=ReportedAlerts(client),
    )
    async with gw.http() as http:
        response = await http.post("/v1/helloworld/call", json={"name": "crash"}, headers=AUTH)
    await gw.v1.calls.drain()

    assert response.status_code == 500
    [stored] = (await handler.list(alerts_pb.ListRequest(), call("List"))).events
    assert (stored.category, stored.action, stored.userID) == (
        "panic",
        "/v1/helloworld/call",
        PROJECT,
    )
    assert stored.metadata["error"]
    [text] = posted.texts
    assert '"action": "/v1/helloworld/call"' in text


async def test_a_failed_report_is_logged_and_the_answer_is_unchanged(
    engine: AsyncEngine,
) -> None:
    counters = SqlCounterStore(engine)
    down = FakeAlertsClient()
    down.report_event.raises(Unavailable("alerts.reportevent", "down"))
    gw = gateway(
        counters,
        catalog=Catalog(hello_entry(pricing={"Helloworld.Call": 10})),
        balances={CUSTOMER: 100},
        reporter=ReportedAlerts(down),
    )
    with capture_logs() as logs:
        async with gw.http() as http:
            response = await http.post("/v1/helloworld/call", json={"name": "crash"}, headers=AUTH)
        await gw.v1.calls.drain()

    assert response.status_code == 500
    assert response.json()["detail"] == CRASHED
    [reported] = down.report_event.calls
    assert reported.event.category == "panic" and reported.event.userID == PROJECT
    events = [log["event"] for log in logs]
    assert "v1.upstream_crashed" in events and "v1.alert_failed" in events
    assert await counters.get(hot_key(CUSTOMER)) == 100
