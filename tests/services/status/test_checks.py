"""What is checked: the configured services the platform defines, in order, then the
database, the counter store and the event stream, on both databases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from m3o.runtime.auth import CallContext
from m3o.runtime.counters.sqlite import SqlCounterStore
from m3o.runtime.store import SessionFactory, create_engine, session_factory
from m3o.services.status.checks import checked_services, platform_checks
from m3o.services.status.handler import NOT_HEALTHY, OK, Status
from m3o.services.status.proto import status_pb2 as pb
from services.status.support import Probe

CTX = CallContext(service="status", method="Call", account=None)


def test_names_the_platform_does_not_define_are_dropped_with_one_log_line() -> None:
    with capture_logs() as logs:
        chosen = checked_services(
            ["admin", "customers", "auth", "mailchimp", "customers"], ["auth", "customers"]
        )

    assert chosen == ["customers", "auth"]
    [logged] = [entry for entry in logs if entry["event"] == "status.services_not_defined"]
    assert logged["dropped"] == ["admin", "mailchimp"]
    assert logged["checked"] == ["customers", "auth"]


def test_no_log_line_when_every_name_is_defined() -> None:
    with capture_logs() as logs:
        assert checked_services(["auth"], ["auth", "customers"]) == ["auth"]

    assert logs == []


async def test_every_service_and_the_shared_servers_are_checked(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    probe = Probe(("auth", "customers"))
    checks = platform_checks(
        services=["auth", "customers"],
        probe=probe,
        sessions=sessions,
        counters=SqlCounterStore(engine),
        timeout=1.5,
    )

    answer = await Status(checks=checks, timeout=1.5).call(pb.CallRequest(), CTX)

    assert dict(answer.statuses) == {
        "auth": OK,
        "customers": OK,
        "database": OK,
        "counters": OK,
        "events": OK,
    }
    assert answer.healthy
    assert sorted(probe.asked) == [("auth", 1.5), ("customers", 1.5)]


async def test_a_stopped_service_and_a_down_event_stream_are_not_healthy(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    probe = Probe(("auth", "customers"), down={"customers"}, events_down=True)
    checks = platform_checks(
        services=["auth", "customers"],
        probe=probe,
        sessions=sessions,
        counters=SqlCounterStore(engine),
        timeout=1,
    )

    answer = await Status(checks=checks, timeout=1).call(pb.CallRequest(), CTX)

    assert dict(answer.statuses) == {
        "auth": OK,
        "customers": NOT_HEALTHY,
        "database": OK,
        "counters": OK,
        "events": NOT_HEALTHY,
    }
    assert not answer.healthy


async def test_an_unreachable_database_is_not_healthy() -> None:
    # A database server nobody listens on: the first connection fails.
    unreachable = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        checks = platform_checks(
            services=[],
            probe=Probe(()),
            sessions=session_factory(unreachable),
            counters=SqlCounterStore(unreachable),
            timeout=2,
        )

        answer = await Status(checks=checks, timeout=2).call(pb.CallRequest(), CTX)
    finally:
        await unreachable.dispose()

    assert dict(answer.statuses) == {"database": NOT_HEALTHY, "counters": NOT_HEALTHY, "events": OK}
