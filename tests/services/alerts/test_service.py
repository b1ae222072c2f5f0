"""The service definition: its parts, and the local sink when Slack and Discord are off or
unconfigured (the event is stored and the message logged, nothing is sent)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from m3o.runtime.store import SessionFactory
from m3o.services.alerts.proto import alerts_pb2 as pb
from m3o.services.alerts.proto.client import SPEC
from m3o.services.alerts.service import definition
from m3o.services.alerts.tables import metadata
from services.alerts.support import call, event
from support.services import dependencies


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"alert": {"slack": {"enabled": True}, "discord": {"enabled": True}}},
        {
            "alert": {
                "slack": {"enabled": False, "token": "xoxb-unused"},
                "discord": {"enabled": False, "webhook": "https://discord.invalid/hook"},
            }
        },
    ],
    ids=["default", "enabled without credentials", "configured but off"],
)
async def test_without_a_destination_alerts_go_to_the_log_and_are_stored(
    document: dict[str, Any], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "alerts"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    with capture_logs() as logs:
        parts = await definition.build(dependencies("alerts", engine, sessions, document))
        [handler] = parts.handlers
        await handler.implementation.report_event(  # type: ignore[attr-defined]
            event(label="offline"), call("ReportEvent")
        )
        listed = await handler.implementation.list(  # type: ignore[attr-defined]
            pb.ListRequest(), call("List")
        )

    sunk = [log for log in logs if log["event"] == "alerts.local_sink"]
    assert sorted(log["destination"] for log in sunk) == ["discord", "slack"]
    assert all('"label": "offline"' in log["message"] for log in sunk)
    assert [e.label for e in listed.events] == ["offline"]
    assert "xoxb-unused" not in str(logs) and "discord.invalid" not in str(logs)
    if document.get("alert", {}).get("slack", {}).get("enabled"):
        assert {log["event"] for log in logs} >= {
            "alerts.slack_unconfigured",
            "alerts.discord_unconfigured",
        }


async def test_the_collapse_window_comes_from_config(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    document = {"alert": {"collapse_window": "0s", "blocklist": ["ignored"]}}
    parts = await definition.build(dependencies("alerts", engine, sessions, document))
    [handler] = parts.handlers
    with capture_logs() as logs:
        for label in ("a", "a", "ignored"):
            await handler.implementation.report_event(  # type: ignore[attr-defined]
                event(label=label), call("ReportEvent")
            )
    assert len([log for log in logs if log["event"] == "alerts.local_sink"]) == 4
