"""Tracing for one process, as configured (``tracing`` section): started once, at start-up.

The process's service name is ``m3o`` (the ``local`` profile: everything in one process),
``m3o-gateway`` or ``m3o-<service>`` (``platform`` profile).
"""

from __future__ import annotations

from m3o.runtime.config import Config
from m3o.runtime.logging import get_logger
from m3o.runtime.logging.tracing import start_tracing

__all__ = ["start_process_tracing"]

_log = get_logger(__name__)


def start_process_tracing(config: Config, service_name: str) -> bool:
    """Start exporting spans when ``tracing.otlp_endpoint`` is set; True when this call
    started it (the caller then stops it on shut-down)."""
    endpoint = config.tracing.otlp_endpoint
    if not endpoint:
        return False
    started = start_tracing(
        service_name, otlp_endpoint=endpoint, sample_ratio=config.tracing.sample_ratio
    )
    if started:
        _log.info("tracing.started", service=service_name, sample_ratio=config.tracing.sample_ratio)
    return started
