"""A failed run's alert reaches the alerts service (and the log); a report that fails is
logged and never raised."""

from __future__ import annotations

from structlog.testing import capture_logs

from m3o.runtime.errors import Unavailable
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.fakes import FakeAlertsClient
from m3o.services.endtoend.alerts import Alert, ReportedAlerts


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
