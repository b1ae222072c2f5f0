"""Payment alerts: a charge that cannot be credited (its Stripe customer is not mapped) or
that failed. Each is logged (``stripe.alert``, as before) and reported to the alerts
service, which stores it and tells operators in Slack / Discord. A report that fails is
logged and the webhook goes on: an alert never stops a payment from being handled."""

from __future__ import annotations

from collections.abc import Mapping

from m3o.runtime.errors import M3OError
from m3o.runtime.logging import get_logger
from m3o.services.alerts.proto import alerts_pb2 as alerts_pb
from m3o.services.alerts.proto.client import AlertsService

__all__ = ["ALERT", "PAYMENTS", "REPORT_TIMEOUT", "PaymentAlerts"]

_log = get_logger(__name__)

ALERT = "stripe.alert"
"""Log event of an alert: ``category`` and ``action`` say what for."""
PAYMENTS = "payments"
"""``category`` of the payment alerts."""
REPORT_TIMEOUT = 5.0
"""Seconds a report may take: Stripe waits for the webhook's answer meanwhile."""


class PaymentAlerts:
    def __init__(self, alerts: AlertsService, *, timeout: float = REPORT_TIMEOUT) -> None:
        self._alerts = alerts
        self._timeout = timeout

    async def report(
        self,
        action: str,
        *,
        charge_id: str,
        customer_id: str,
        amount: int | None,
        details: Mapping[str, object],
    ) -> None:
        """Log and report ``action`` (``charge_unmapped``, ``charge_failed``) about a
        charge: its id is the label (so redeliveries of one charge collapse into one
        message), its amount the value."""
        _log.error(
            ALERT,
            category=PAYMENTS,
            action=action,
            charge_id=charge_id,
            customer_id=customer_id,
            amount=amount,
            **details,
        )
        metadata = {name: str(value) for name, value in details.items() if value is not None}
        event = alerts_pb.Event(
            category=PAYMENTS,
            action=action,
            label=charge_id,
            value=amount if amount is not None and amount > 0 else 0,
            metadata=metadata,
            userID=customer_id,
        )
        try:
            await self._alerts.report_event(
                alerts_pb.ReportEventRequest(event=event), timeout=self._timeout
            )
        except M3OError as exc:
            _log.warning("stripe.alert_failed", action=action, charge_id=charge_id, error=str(exc))
