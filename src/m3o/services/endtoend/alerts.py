"""Where a failed run is reported: the :class:`AlertReporter` port.

The alerts service (``alerts.proto``: ``ReportEvent{event{category, action, label, value,
metadata, userID}}``) implements it with a client once it is wired in; until then
:class:`LoggedAlerts` writes one structured error line per alert, which log-based alerting
picks up. Identical failures within the alerts window are collapsed by the alerts
service, not here: every failed run reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from m3o.runtime.logging import get_logger

__all__ = ["CATEGORY", "LABEL", "Alert", "AlertReporter", "LoggedAlerts"]

_log = get_logger(__name__)

CATEGORY = "monitoring"
LABEL = "endtoend"


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


class LoggedAlerts:
    """Reports each alert as one structured error log line (``endtoend.alert``)."""

    async def report(self, alert: Alert) -> None:
        _log.error(
            "endtoend.alert",
            category=alert.category,
            action=alert.action,
            label=alert.label,
            value=alert.value,
            metadata=dict(alert.metadata),
        )
