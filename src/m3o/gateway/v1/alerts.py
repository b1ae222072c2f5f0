"""The :class:`~m3o.gateway.v1.ports.Alerts` port over the alerts service: an upstream
crash becomes ``alerts.ReportEvent`` (category ``panic``, the path as action, the project
as userID, the error in the metadata), stored there and posted to Slack / Discord.

The public API reports in the background and logs a failed report (``v1.alert_failed``):
a call's answer never waits for, or fails because of, its alert.
"""

from __future__ import annotations

from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.client import AlertsService

__all__ = ["ReportedAlerts"]


class ReportedAlerts:
    """:class:`~m3o.gateway.v1.ports.Alerts` through ``alerts.ReportEvent``."""

    def __init__(self, alerts: AlertsService) -> None:
        self._alerts = alerts

    async def report(
        self, category: str, action: str, user_id: str, metadata: dict[str, str]
    ) -> None:
        event = alerts_pb.Event(category=category, action=action, userID=user_id, metadata=metadata)
        await self._alerts.report_event(alerts_pb.ReportEventRequest(event=event))
