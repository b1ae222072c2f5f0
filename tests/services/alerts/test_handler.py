"""ReportEvent and List: who may call them, bad input, the blocklist, what is stored and
what is posted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from m3o.runtime.auth import Account
from m3o.runtime.counters import CounterStore
from m3o.runtime.errors import BadRequest, Forbidden, M3OError, Unauthorized
from m3o.runtime.store import SessionFactory
from m3o.services.alerts.collapse import Collapser
from m3o.services.alerts.handler import EMPTY_EVENT, MAX_VALUE, Alerts
from m3o.services.alerts.proto import alerts_pb2 as pb
from services.alerts.support import ROLES, Recorder, alerts, call, event

ALLOWED = {"admin", "service"}
EXPECTED: dict[str, type[M3OError]] = {
    "customer": Forbidden,
    "other customer": Forbidden,
    "anonymous": Unauthorized,
}


def _world(
    sessions: SessionFactory, counters: CounterStore, blocklist: tuple[str, ...] = ()
) -> tuple[Alerts, Recorder]:
    recorder = Recorder()
    return alerts(sessions, counters, [recorder], blocklist=blocklist), recorder


async def _stored(handler: Alerts) -> list[pb.Event]:
    return list((await handler.list(pb.ListRequest(), call("List"))).events)


@pytest.mark.parametrize("role", list(ROLES))
async def test_report_event_is_for_admins_and_services(
    role: str, sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, recorder = _world(sessions, sql_counters)
    account: Account | None = ROLES[role]
    if role in ALLOWED:
        await handler.report_event(event(), call("ReportEvent", account))
        assert len(recorder.texts) == 1
        assert len(await _stored(handler)) == 1
    else:
        with pytest.raises(EXPECTED[role]):
            await handler.report_event(event(), call("ReportEvent", account))
        assert recorder.texts == []
        assert await _stored(handler) == []


@pytest.mark.parametrize("role", list(ROLES))
async def test_list_is_for_admins_and_services(
    role: str, sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, _ = _world(sessions, sql_counters)
    await handler.report_event(event(), call("ReportEvent"))
    account = ROLES[role]
    if role in ALLOWED:
        answer = await handler.list(pb.ListRequest(), call("List", account))
        assert [e.category for e in answer.events] == ["panic"]
    else:
        with pytest.raises(EXPECTED[role]):
            await handler.list(pb.ListRequest(), call("List", account))


async def test_a_missing_event_is_a_bad_request(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, recorder = _world(sessions, sql_counters)
    with pytest.raises(BadRequest) as refused:
        await handler.report_event(pb.ReportEventRequest(), call("ReportEvent"))
    assert refused.value.detail == EMPTY_EVENT
    assert refused.value.id == "alerts.reportevent"
    assert recorder.texts == [] and await _stored(handler) == []


async def test_a_value_beyond_the_database_is_a_bad_request(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, _ = _world(sessions, sql_counters)
    with pytest.raises(BadRequest):
        await handler.report_event(event(value=MAX_VALUE + 1), call("ReportEvent"))
    await handler.report_event(event(value=MAX_VALUE), call("ReportEvent"))
    assert [e.value for e in await _stored(handler)] == [MAX_VALUE]


@pytest.mark.parametrize(
    "request_",
    [pb.ListRequest(limit=-1), pb.ListRequest(since=-5)],
    ids=["negative limit", "negative since"],
)
async def test_list_refuses_negative_numbers(
    request_: pb.ListRequest, sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, _ = _world(sessions, sql_counters)
    with pytest.raises(BadRequest):
        await handler.list(request_, call("List"))


@pytest.mark.parametrize("where", ["category", "action", "label"])
async def test_an_event_containing_a_blocked_string_is_dropped(
    where: str, sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, recorder = _world(sessions, sql_counters, blocklist=("", "healthcheck"))
    await handler.report_event(event(**{where: "a-healthcheck-probe"}), call("ReportEvent"))
    await handler.report_event(event(**{where: "a-HEALTHCHECK-probe"}), call("ReportEvent"))

    stored = await _stored(handler)
    # Case-sensitive, as the reference; the empty entry matches nothing.
    assert [getattr(e, where) for e in stored] == ["a-HEALTHCHECK-probe"]
    assert len(recorder.texts) == 1


async def test_a_success_is_stored_and_not_posted(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, recorder = _world(sessions, sql_counters)
    await handler.report_event(event(action="success"), call("ReportEvent"))
    assert recorder.texts == []
    assert [e.action for e in await _stored(handler)] == ["success"]


async def test_list_is_newest_first_filtered_by_time_and_category(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    times = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m) for m in (0, 1, 2, 3))
    handler = Alerts(
        sessions=sessions,
        collapser=Collapser(sql_counters, timedelta(minutes=5)),
        destinations=[],
        clock=lambda: next(times),
    )
    for category, label in [("panic", "a"), ("payments", "b"), ("panic", "c"), ("panic", "d")]:
        await handler.report_event(event(category=category, label=label), call("ReportEvent"))

    everything = await handler.list(pb.ListRequest(), call("List"))
    assert [e.label for e in everything.events] == ["d", "c", "b", "a"]
    assert len({e.id for e in everything.events}) == 4
    since = int(datetime(2026, 1, 1, 0, 1, tzinfo=UTC).timestamp())
    recent = await handler.list(pb.ListRequest(since=since, category="panic"), call("List"))
    assert [(e.label, e.created) for e in recent.events] == [
        ("d", since + 120),
        ("c", since + 60),
    ]
    assert [
        e.label for e in (await handler.list(pb.ListRequest(limit=1), call("List"))).events
    ] == ["d"]


async def test_the_reported_id_and_time_are_the_services_own(
    sessions: SessionFactory, sql_counters: CounterStore
) -> None:
    handler, _ = _world(sessions, sql_counters)
    await handler.report_event(event(id="mine", created=5), call("ReportEvent"))
    [stored] = await _stored(handler)
    assert stored.id != "mine" and stored.created > 5
