"""A dead letter is reported to the alerts service, the group as its label (so one failing
consumer collapses into one message); a report that fails is logged, never raised."""

from __future__ import annotations

from structlog.testing import capture_logs

from m3o.platform.dead_letter_alerts import DeadLetterAlerts
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import DeadLettered
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.fakes import FakeAlertsClient

DEAD = DeadLettered(
    topic="stripe",
    group="balance-stripe",
    event_id="evt-1",
    type_name="EventTypeChargeSucceeded",
    attempts=8,
    error="ChargeNotCredited('charge ch_1: no rate for eur')",
)


async def test_a_dead_letter_is_reported_with_its_group_as_the_label() -> None:
    alerts = FakeAlertsClient()
    alerts.report_event.returns(alerts_pb.ReportEventResponse())

    await DeadLetterAlerts(alerts)(DEAD)

    [recorded] = alerts.report_event.recorded
    assert recorded.request.event == alerts_pb.Event(
        category="events",
        action="dead_lettered",
        label="balance-stripe",
        value=1,
        metadata={
            "topic": "stripe",
            "event_id": "evt-1",
            "type": "EventTypeChargeSucceeded",
            "attempts": "8",
            "error": "ChargeNotCredited('charge ch_1: no rate for eur')",
        },
    )
    assert recorded.timeout == 5.0


async def test_a_report_that_fails_is_logged_and_not_raised() -> None:
    alerts = FakeAlertsClient()
    alerts.report_event.raises(Unavailable("alerts.reportevent", "Service unavailable"))

    with capture_logs() as logs:
        await DeadLetterAlerts(alerts)(DEAD)

    assert [(log["event"], log["group"]) for log in logs] == [
        ("events.dead_letter_alert_failed", "balance-stripe")
    ]
