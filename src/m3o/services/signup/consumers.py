"""Onboarding: what a new customer gets once, after customers/Signup (every method).

Unless the address is on the engagement block list, two steps, each done once:

- the promo credit: ``balance.Increment`` with idempotency key ``promo:<customer id>``;
- the welcome email, ``welcome_delay`` after the signup event: ``emails.Send`` with
  ``send_at`` and idempotency key ``welcome:<customer id>``.

Delivery is at least once. The idempotency keys make a repeated call harmless, and each
step done is recorded in ``signup_onboarding`` so a redelivery does not call again. A step
that fails does not stop the other; the event then fails and the bus retries it with
backoff (only the missing step is repeated), dead-lettering it after the last attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

import orjson

from m3o.events.customers import TOPIC, Event, EventType
from m3o.events.customers import events_pb2 as events_pb
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import M3OError
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.balance.proto import balance_pb2 as balance_pb
from m3o.services.balance.proto.client import BalanceService
from m3o.services.emails.proto import emails_pb2 as emails_pb
from m3o.services.emails.proto.client import EmailsService
from m3o.services.signup import records
from m3o.services.signup.settings import SignupSettings

__all__ = ["MAX_ATTEMPTS", "Onboarding", "OnboardingFailed"]

_log = get_logger(__name__)

MAX_ATTEMPTS = 16
"""Deliveries of one event before it is dead-lettered: with the bus's backoff (1 s doubling,
at most 5 min) about 45 minutes, so a short outage of balance or emails loses nothing."""

_PROMO = "promo_granted"
_WELCOME = "welcome_scheduled"


class OnboardingFailed(Exception):
    """A step of onboarding failed; the event is retried."""


class Onboarding:
    """Consumes ``customers`` in the group ``signup-customers``."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        balance: BalanceService,
        emails: EmailsService,
        settings: SignupSettings,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._balance = balance
        self._emails = emails
        self._settings = settings
        self._clock = clock

    def consumer(self) -> Consumer:
        return Consumer(TOPIC, self.handle, max_attempts=MAX_ATTEMPTS)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.decode(Event)
        if event.type != EventType.EventTypeSignup:
            return
        customer = event.customer
        if not customer.id or not customer.email:
            _log.warning("signup.onboarding_skipped", event_id=delivery.id, reason="no customer")
            return
        if not self._settings.policy.gets_onboarding(customer.email):
            _log.info("signup.onboarding_skipped", customer_id=customer.id, reason="blocked")
            return
        async with self._sessions() as session:
            done = await records.onboarding_done(session, customer.id)
        failed: list[str] = []
        if done.promo_granted is None and self._settings.promo_credit > 0:
            await self._step(customer.id, _PROMO, self._grant_promo(customer.id), failed)
        if done.welcome_scheduled is None:
            send_at = delivery.time + self._settings.welcome_delay
            await self._step(
                customer.id, _WELCOME, self._schedule_welcome(customer, send_at), failed
            )
        if failed:
            raise OnboardingFailed(f"onboarding of {customer.id} failed: {', '.join(failed)}")

    async def _step(
        self, customer_id: str, step: str, pending: Awaitable[object], failed: list[str]
    ) -> None:
        """Run one step and record it done; a failure is logged and noted in ``failed``."""
        try:
            await pending
        except M3OError as exc:
            _log.warning(
                "signup.onboarding_step_failed",
                customer_id=customer_id,
                step=step,
                kind=type(exc).__name__,
                error_id=exc.id,
                detail=exc.detail,
            )
            failed.append(step)
            return
        async with transaction(self._sessions) as session:
            await records.set_onboarding_step(session, customer_id, step, self._clock())

    async def _grant_promo(self, customer_id: str) -> None:
        await self._balance.increment(
            balance_pb.IncrementRequest(
                customer_id=customer_id,
                delta=self._settings.promo_credit,
                visible=True,
                reference=self._settings.promo_message,
                idempotency_key=f"promo:{customer_id}",
            )
        )

    async def _schedule_welcome(self, customer: events_pb.Customer, send_at: datetime) -> None:
        request = emails_pb.SendRequest(
            to=customer.email,
            template_id=self._settings.templates.welcome,
            template_data=orjson.dumps({"email": customer.email, "name": customer.name}).decode(),
            send_at=_unix(send_at),
            idempotency_key=f"welcome:{customer.id}",
        )
        setattr(request, "from", self._settings.email_from)  # "from" is a Python keyword
        await self._emails.send(request)


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())
