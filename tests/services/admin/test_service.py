"""The service definition: its own service account (``admin`` is the operator's), the
handler, the customers consumer and the resume cron."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.events.customers import TOPIC
from m3o.platform.bootstrap import ADMIN_ACCOUNT
from m3o.platform.services import ACCOUNT_NAMES
from m3o.runtime.store import SessionFactory
from m3o.services.admin.handler import Admin
from m3o.services.admin.proto.client import SPEC
from m3o.services.admin.service import RESUME_EVERY, definition
from support.services import dependencies


def test_admin_has_a_service_account_that_is_not_the_operators() -> None:
    assert definition.account_id == "admin-service"
    assert "admin-service" in ACCOUNT_NAMES
    assert ADMIN_ACCOUNT not in ACCOUNT_NAMES


async def test_the_definition_serves_consumes_and_resumes(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    parts = await definition.build(dependencies("admin", engine, sessions))
    [handler] = parts.handlers
    assert handler.spec == SPEC
    assert isinstance(handler.implementation, Admin)
    assert handler.public == frozenset()
    assert [c.topic for c in parts.consumers] == [TOPIC]
    assert [(c.name, c.every) for c in parts.crons] == [("resume-deletions", RESUME_EVERY)]
