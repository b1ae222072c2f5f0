"""Identical alerts within the collapse window: one message, the rest counted and the count
sent with the next message after the window, across handler instances (processes) that
share one counter store, on SQL and on Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from m3o.runtime.counters import CounterStore
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.collapse import describe
from m3o.services.alerts.message import render
from m3o.services.alerts.proto import alerts_pb2 as pb
from services.alerts.support import Recorder, alerts, call, event

WINDOW = timedelta(milliseconds=600)


async def _wait_past(started: float, window: timedelta) -> None:
    """Until the window that opened before ``started`` (monotonic) has certainly ended: the
    condition is the elapsed time itself."""
    deadline = started + window.total_seconds() + 0.2
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def test_identical_alerts_in_the_window_are_one_message_across_processes(
    sessions: SessionFactory, counters: CounterStore
) -> None:
    first, second = Recorder("first"), Recorder("second")
    one = alerts(sessions, counters, [first], window=WINDOW)
    two = alerts(sessions, counters, [second], window=WINDOW)
    await one.report_event(event(label="x"), call("ReportEvent"))
    started = time.monotonic()  # the window opened during that call: over by this + WINDOW
    for handler in (two, one, two):
        await handler.report_event(event(label="x"), call("ReportEvent"))
    await two.report_event(event(label="x", value=1), call("ReportEvent"))  # not identical

    assert len(first.texts) == 1 and "(and" not in first.texts[0]
    assert len(second.texts) == 1 and '"value": 1' in second.texts[0]
    stored = (await one.list(pb.ListRequest(), call("List"))).events
    assert len(stored) == 5  # every event is stored, collapsed or not

    await _wait_past(started, WINDOW)
    await two.report_event(event(label="x"), call("ReportEvent"))
    assert len(second.texts) == 2
    assert second.texts[1].endswith("\n(and 3 more in the 600 ms after the previous message)")

    # The count was sent: the next window starts from none.
    await two.report_event(event(label="x"), call("ReportEvent"))
    started = time.monotonic()
    await _wait_past(started, WINDOW)
    await one.report_event(event(label="x"), call("ReportEvent"))
    assert first.texts[-1].endswith("(and 1 more in the 600 ms after the previous message)")


def test_the_count_names_the_window() -> None:
    assert render(pb.Event(category="panic"), 2, timedelta(minutes=5)).endswith(
        "\n(and 2 more in the 5 min after the previous message)"
    )
    assert render(pb.Event(category="panic"), 0, timedelta(minutes=5)).endswith("```")
    assert [describe(timedelta(seconds=s)) for s in (30, 90, 120, 7200)] == [
        "30 s",
        "90 s",
        "2 min",
        "2 h",
    ]


async def test_a_zero_window_collapses_nothing(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    recorder = Recorder()
    handler = alerts(sessions, sql_counters, [recorder], window=timedelta(0))
    for _ in range(3):
        await handler.report_event(event(), call("ReportEvent"))
    assert len(recorder.texts) == 3
