"""A failed run's alert reaches the alerts service (and the log); a report that fails is
logged and never raised; failing runs within the alerts window reach operators once."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.errors import Unavailable
from m3o.runtime.rpc import StaticToken
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.client import SPEC, AlertsClient
from m3o.services.alerts.proto.fakes import FakeAlertsClient
from m3o.services.endtoend.alerts import Alert, ReportedAlerts
from services.alerts.support import ADMIN, SERVICE, Recorder
from services.alerts.support import alerts as alerts_handler
from services.alerts.support import call as alerts_call
from support.services import EveryTokenIs, serve


async def test_an_alert_is_logged_and_reported_to_the_alerts_service() -> None:
    alerts = FakeAlertsClient()
    alerts.report_event.returns(alerts_pb.ReportEventResponse())

    with capture_logs() as logs:
        await ReportedAlerts(alerts).report(Alert("examples", {"error": "helloworld failed"}))

    [recorded] = alerts.report_event.recorded
    assert recorded.request.event == alerts_pb.Event(
        category="monitoring",
        action="examples",
        label="endtoend",
        value=1,
        metadata={"error": "helloworld failed"},
    )
    assert [log["event"] for log in logs] == ["endtoend.alert"]


async def test_a_report_that_fails_is_logged_and_not_raised() -> None:
    alerts = FakeAlertsClient()
    alerts.report_event.raises(Unavailable("alerts.reportevent", "Service unavailable"))

    with capture_logs() as logs:
        await ReportedAlerts(alerts).report(Alert("signup", {"error": "no code"}))

    assert [log["event"] for log in logs] == ["endtoend.alert", "endtoend.alert_failed"]
    assert logs[1]["action"] == "signup"


async def test_runs_failing_within_the_window_reach_operators_once(
    sessions: SessionFactory, engine: AsyncEngine
) -> None:
    """Each failed run reports; the alerts service posts the first and counts the rest, so
    a platform failing every 5 minutes is one message, not one a run."""
    channel = Recorder()
    handler = alerts_handler(sessions, SqlCounterStore(engine), [channel])
    transport = serve(SPEC, handler, authenticator=EveryTokenIs(SERVICE))
    reporter = ReportedAlerts(AlertsClient(transport, StaticToken("endtoend-token")))

    for error in ("helloworld Call answered 500", "helloworld Call answered 502", "timeout"):
        await reporter.report(Alert("examples", {"error": error}))

    assert len(channel.texts) == 1
    assert "helloworld Call answered 500" in channel.texts[0]
    listed = await handler.list(alerts_pb.ListRequest(), alerts_call("List", ADMIN))
    assert len(listed.events) == 3  # every run's failure is stored
