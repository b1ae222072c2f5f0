"""Helpers of the admin tests: accounts, call contexts, the fake clients of every service
admin asks, and the world under test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from m3o.runtime.auth import Account, CallContext
from m3o.runtime.store import SessionFactory
from m3o.services.admin.deletion import Deletions
from m3o.services.admin.handler import Admin
from m3o.services.admin.targets import Services, targets
from m3o.services.balance.proto.fakes import FakeBalanceClient
from m3o.services.billing.proto.fakes import FakeBillingClient
from m3o.services.customers.proto import customers_pb2
from m3o.services.customers.proto.fakes import FakeCustomersClient
from m3o.services.emails.proto.fakes import FakeEmailsClient
from m3o.services.mailchimp.proto.fakes import FakeMailchimpClient
from m3o.services.projects.proto.fakes import FakeProjectsClient
from m3o.services.signup.proto.fakes import FakeSignupClient
from m3o.services.stripe.proto.fakes import FakeStripeClient
from m3o.services.usage.proto.fakes import FakeUsageClient
from m3o.services.v1.proto.fakes import FakeV1Client
from support.services import TickingClock

ADMIN = Account(id="admin-1", type="user", scopes=("admin",))
SERVICE = Account(id="endtoend", type="service", scopes=("service",))
START = datetime(2024, 1, 1, tzinfo=UTC)
EMAIL = "ann@example.com"
SERVICE_NAMES = (
    "balance",
    "billing",
    "customers",
    "emails",
    "mailchimp",
    "projects",
    "signup",
    "stripe",
    "usage",
    "v1",
)


def customer(customer_id: str) -> Account:
    return Account(
        id=customer_id, type="customer", scopes=("customer",), name=f"{customer_id}@example.com"
    )


ANN = customer("ann")
BOB = customer("bob")
ROLES: dict[str, Account | None] = {
    "customer": ANN,
    "other customer": BOB,
    "admin": ADMIN,
    "service": SERVICE,
    "anonymous": None,
}


def call(method: str, account: Account | None = ADMIN) -> CallContext:
    return CallContext(service="admin", method=method, account=account)


@dataclass
class Fakes:
    customers: FakeCustomersClient = field(default_factory=FakeCustomersClient)
    signup: FakeSignupClient = field(default_factory=FakeSignupClient)
    emails: FakeEmailsClient = field(default_factory=FakeEmailsClient)
    mailchimp: FakeMailchimpClient = field(default_factory=FakeMailchimpClient)
    projects: FakeProjectsClient = field(default_factory=FakeProjectsClient)
    balance: FakeBalanceClient = field(default_factory=FakeBalanceClient)
    stripe: FakeStripeClient = field(default_factory=FakeStripeClient)
    usage: FakeUsageClient = field(default_factory=FakeUsageClient)
    billing: FakeBillingClient = field(default_factory=FakeBillingClient)
    v1: FakeV1Client = field(default_factory=FakeV1Client)

    def counts(self) -> dict[str, int]:
        """How often each service was asked to delete a customer."""
        return {name: getattr(self, name).delete_customer.call_count for name in SERVICE_NAMES}


@dataclass
class World:
    sessions: SessionFactory
    fakes: Fakes
    deletions: Deletions
    handler: Admin


def build_world(sessions: SessionFactory) -> World:
    fakes = Fakes()
    fakes.customers.delete_customer.returns(customers_pb2.DeleteCustomerResponse(email=EMAIL))
    services = Services(
        customers=fakes.customers,
        signup=fakes.signup,
        emails=fakes.emails,
        mailchimp=fakes.mailchimp,
        projects=fakes.projects,
        balance=fakes.balance,
        stripe=fakes.stripe,
        usage=fakes.usage,
        billing=fakes.billing,
        v1=fakes.v1,
    )
    deletions = Deletions(sessions=sessions, targets=targets(services), clock=TickingClock(START))
    return World(
        sessions=sessions, fakes=fakes, deletions=deletions, handler=Admin(deletions=deletions)
    )
