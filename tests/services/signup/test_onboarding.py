"""Onboarding: one promo credit and one welcome email per signup, however often the event
arrives; nothing for addresses on the engagement block list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from m3o.events.customers import TOPIC, Event, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.email_address import SignupPolicy
from m3o.runtime.errors import Unavailable
from m3o.runtime.events import Delivery
from m3o.runtime.store import SessionFactory
from m3o.services.balance.proto import balance_pb2 as balance_pb
from m3o.services.balance.proto.fakes import FakeBalanceClient
from m3o.services.emails.proto.fakes import FakeEmailsClient
from m3o.services.signup.consumers import Onboarding, OnboardingFailed
from m3o.services.signup.settings import SignupSettings

SIGNED_UP = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class Subject:
    def __init__(self, sessions: SessionFactory, settings: SignupSettings | None = None) -> None:
        self.balance = FakeBalanceClient()
        self.emails = FakeEmailsClient()
        self.onboarding = Onboarding(
            sessions=sessions,
            balance=self.balance,
            emails=self.emails,
            settings=settings or SignupSettings(promo_message="Welcome gift"),
        )


def delivery(
    event_type: EventType.ValueType = EventType.EventTypeSignup,
    email: str = "ann@example.com",
    event_id: str = "event-1",
) -> Delivery:
    event = Event(
        type=event_type,
        customer=events_pb.Customer(id="cust-1", email=email, status="verified"),
        signup=events_pb.Signup(method="email"),
    )
    return Delivery(
        id=event_id,
        topic=TOPIC,
        type_name=EventType.Name(event_type),
        time=SIGNED_UP,
        payload=event.SerializeToString(),
    )


async def test_signup_redelivered_three_times_grants_one_credit_and_one_welcome(
    sessions: SessionFactory,
) -> None:
    subject = Subject(sessions)
    for attempt in range(3):
        await subject.onboarding.handle(delivery(event_id=f"event-{attempt % 2}"))

    assert subject.balance.increment.calls == [
        balance_pb.IncrementRequest(
            customer_id="cust-1",
            delta=10_000,
            visible=True,
            reference="Welcome gift",
            idempotency_key="promo:cust-1",
        )
    ]
    [welcome] = subject.emails.send.calls
    assert welcome.to == "ann@example.com"
    assert welcome.template_id == "welcome"
    assert welcome.send_at == int((SIGNED_UP + timedelta(hours=24)).timestamp())
    assert welcome.idempotency_key == "welcome:cust-1"
    assert orjson.loads(welcome.template_data)["email"] == "ann@example.com"


@pytest.mark.parametrize(
    "event_type",
    [EventType.EventTypeCreated, EventType.EventTypeVerified, EventType.EventTypeLogin],
)
async def test_other_customer_events_are_ignored(
    sessions: SessionFactory, event_type: EventType.ValueType
) -> None:
    subject = Subject(sessions)
    await subject.onboarding.handle(delivery(event_type))
    assert subject.balance.increment.call_count == 0
    assert subject.emails.send.call_count == 0


async def test_engagement_block_list_gets_nothing_whatever_the_case(
    sessions: SessionFactory,
) -> None:
    policy = SignupPolicy(engagement_block_list=["Test@M3O.com"])
    subject = Subject(sessions, SignupSettings(policy=policy))
    await subject.onboarding.handle(delivery(email="test@m3o.COM"))
    assert subject.balance.increment.call_count == 0
    assert subject.emails.send.call_count == 0

    await subject.onboarding.handle(delivery(email="other@m3o.com"))
    assert subject.balance.increment.call_count == 1


async def test_failing_balance_is_retried_without_sending_the_welcome_twice(
    sessions: SessionFactory,
) -> None:
    subject = Subject(sessions)
    subject.balance.increment.returns_once(Unavailable("balance", "not available"))

    with pytest.raises(OnboardingFailed):
        await subject.onboarding.handle(delivery())
    assert subject.emails.send.call_count == 1  # the other step still ran

    await subject.onboarding.handle(delivery())
    assert subject.balance.increment.call_count == 2
    assert subject.emails.send.call_count == 1

    await subject.onboarding.handle(delivery())
    assert subject.balance.increment.call_count == 2


async def test_failing_welcome_is_retried_without_crediting_twice(
    sessions: SessionFactory,
) -> None:
    subject = Subject(sessions)
    subject.emails.send.returns_once(Unavailable("emails.send", "down"))
    with pytest.raises(OnboardingFailed):
        await subject.onboarding.handle(delivery())
    await subject.onboarding.handle(delivery())
    assert subject.balance.increment.call_count == 1
    assert subject.emails.send.call_count == 2


async def test_no_promo_credit_configured_grants_nothing(sessions: SessionFactory) -> None:
    subject = Subject(sessions, SignupSettings(promo_credit=0))
    await subject.onboarding.handle(delivery())
    assert subject.balance.increment.call_count == 0
    assert subject.emails.send.call_count == 1


def test_onboarding_consumes_the_customers_topic(sessions: SessionFactory) -> None:
    consumer = Subject(sessions).onboarding.consumer()
    assert consumer.topic == "customers"
    assert consumer.max_attempts > 8
