"""Where a failed run is reported: the :class:`AlertReporter` port.

:class:`ReportedAlerts` writes one structured error line per alert (``endtoend.alert``)
and reports it to the alerts service, which stores it and tells operators in Slack /
Discord; a report that fails is logged as a warning and the run's result stands.
Identical failures within the alerts window are collapsed by the alerts service, not here:
every failed run reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.client import AlertsService

__all__ = ["CATEGORY", "LABEL", "REPORT_TIMEOUT", "Alert", "AlertReporter", "ReportedAlerts"]

_log = get_logger(__name__)

CATEGORY = "monitoring"
LABEL = "endtoend"
REPORT_TIMEOUT = 30.0
"""Seconds a report may take (the alerts service posts to Slack and Discord meanwhile)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert event: ``action`` is ``signup`` (setup or signup failed) or ``examples``."""

    action: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    category: str = CATEGORY
    label: str = LABEL
    value: int = 1


class AlertReporter(Protocol):
    async def report(self, alert: Alert) -> None:
        """Report ``alert``; a failure to report is the reporter's to log, never raised."""
        ...


class ReportedAlerts:
    """Logs each alert (``endtoend.alert``) and reports it to the alerts service."""

    def __init__(self, alerts: AlertsService, *, timeout: float = REPORT_TIMEOUT) -> None:
        self._alerts = alerts
        self._timeout = timeout

    async def report(self, alert: Alert) -> None:
        _log.error(
            "endtoend.alert",
            category=alert.category,
            action=alert.action,
            label=alert.label,
            value=alert.value,
            metadata=dict(alert.metadata),
        )
        event = alerts_pb.Event(
            category=alert.category,
            action=alert.action,
            label=alert.label,
            value=alert.value,
            metadata=dict(alert.metadata),
        )
        try:
            await self._alerts.report_event(
                alerts_pb.ReportEventRequest(event=event), timeout=self._timeout
            )
        except M3OError as exc:
            _log.warning("endtoend.alert_failed", action=alert.action, error=str(exc))
