"""The service definition: its parts, its settings from config, its handler served."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from m3o.runtime.config import build_config
from m3o.runtime.store import SessionFactory
from m3o.services.signup.handler import Signup
from m3o.services.signup.proto import signup_pb2 as pb
from m3o.services.signup.proto.client import SPEC, SignupClient
from m3o.services.signup.service import definition
from m3o.services.signup.settings import settings_from
from m3o.services.signup.tables import metadata, waitlist
from support.services import dependencies, serve


def test_settings_come_from_the_signup_and_auth_sections() -> None:
    config = build_config(
        {
            "signup": {
                "block_list": [r".*@spam\.com"],
                "engagement_block_list": ["test@m3o.com"],
                "code_ttl": "10m",
                "promoCredit": 5,
                "promoMessage": "hello",
                "welcome_delay": "1h",
                "templates": {"verification": "d-123"},
            },
            "auth": {"customer_token_ttl": "1h"},
        },
        {},
    )
    settings = settings_from(config)
    assert settings.code_ttl == timedelta(minutes=10)
    assert settings.code_attempts == 5
    assert settings.reset_token_ttl == timedelta(minutes=10)
    assert settings.recovery_interval == timedelta(minutes=1)
    assert settings.token_ttl == timedelta(hours=1)
    assert settings.promo_credit == 5
    assert settings.promo_message == "hello"
    assert settings.welcome_delay == timedelta(hours=1)
    assert settings.templates.verification == "d-123"
    assert settings.templates.welcome == "welcome"
    assert not settings.policy.may_sign_up("ann@spam.com")
    assert settings.policy.may_sign_up("ann@example.com")
    assert not settings.policy.gets_onboarding("TEST@m3o.com")


async def test_definition_builds_a_served_handler_a_consumer_and_a_retention_cron(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    assert definition.name == "signup"
    assert definition.metadata is metadata
    assert list(definition.specs) == [SPEC]
    parts = await definition.build(dependencies("signup", engine, sessions))
    [handler] = parts.handlers
    assert handler.spec is SPEC
    assert isinstance(handler.implementation, Signup)
    [consumer] = parts.consumers
    assert consumer.topic == "customers"
    [cron] = parts.crons
    assert cron.every == timedelta(days=1)

    signup = SignupClient(serve(SPEC, handler.implementation))
    await signup.waitlist(pb.WaitlistRequest(email="ann@example.com"))
    async with sessions() as session:
        assert await session.scalar(select(waitlist.c.email)) == "ann@example.com"
