"""Dead letters reported to the alerts service: a consumer group gave up on an event.

Each process's event bus tells :class:`DeadLetterAlerts` of every event its groups
dead-letter; the alert (category ``events``, action ``dead_lettered``, the group as label)
is stored by the alerts service and posted to Slack / Discord, identical ones collapsed
within its window, so a consumer failing on every event is one message, not thousands.
The dead letter itself waits for an operator (``m3o events dead-letters``, ``replay``).
A report that fails is logged and changes nothing.
"""

from __future__ import annotations

from m3o.runtime.errors import M3OError
from m3o.runtime.events import DeadLettered
from m3o.runtime.logging import get_logger
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.client import AlertsService

__all__ = ["CATEGORY", "REPORT_TIMEOUT", "DeadLetterAlerts"]

_log = get_logger(__name__)

CATEGORY = "events"
ACTION = "dead_lettered"
REPORT_TIMEOUT = 5.0
"""Seconds a report may take: the consumer's slot is held meanwhile."""


class DeadLetterAlerts:
    def __init__(self, alerts: AlertsService, *, timeout: float = REPORT_TIMEOUT) -> None:
        self._alerts = alerts
        self._timeout = timeout

    async def __call__(self, dead: DeadLettered) -> None:
        event = alerts_pb.Event(
            category=CATEGORY,
            action=ACTION,
            label=dead.group,
            value=1,
            metadata={
                "topic": dead.topic,
                "event_id": dead.event_id,
                "type": dead.type_name,
                "attempts": str(dead.attempts),
                "error": dead.error,
            },
        )
        try:
            await self._alerts.report_event(
                alerts_pb.ReportEventRequest(event=event), timeout=self._timeout
            )
        except M3OError as exc:
            _log.warning(
                "events.dead_letter_alert_failed",
                group=dead.group,
                event_id=dead.event_id,
                error=str(exc),
            )
