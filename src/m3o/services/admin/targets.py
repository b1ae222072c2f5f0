"""The services that hold per-customer data, and how each is asked to delete it.

Each one deletes only what is in its own tables (auth's account and sessions go through
customers, which owns that relation). ``customers`` comes first: it answers with the
address the customer had, which signup and emails need to find the rows they keep by
address, and mailchimp the audience member Mailchimp keeps. Every call is idempotent, so
asking again after a failure is safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from m3o.services.balance.proto import balance_pb2
from m3o.services.balance.proto.client import BalanceService
from m3o.services.billing.proto import billing_pb2
from m3o.services.billing.proto.client import BillingService
from m3o.services.customers.proto import customers_pb2
from m3o.services.customers.proto.client import CustomersService
from m3o.services.emails.proto import emails_pb2
from m3o.services.emails.proto.client import EmailsService
from m3o.services.mailchimp.proto import mailchimp_pb2
from m3o.services.mailchimp.proto.client import MailchimpService
from m3o.services.projects.proto import projects_pb2
from m3o.services.projects.proto.client import ProjectsService
from m3o.services.signup.proto import signup_pb2
from m3o.services.signup.proto.client import SignupService
from m3o.services.stripe.proto import stripe_pb2
from m3o.services.stripe.proto.client import StripeService
from m3o.services.usage.proto import usage_pb2
from m3o.services.usage.proto.client import UsageService
from m3o.services.v1.proto import v1_pb2
from m3o.services.v1.proto.client import V1Service

__all__ = ["Delete", "Services", "Target", "targets"]

Delete = Callable[[str, str], Awaitable[str]]
"""Delete the data of ``(customer_id, email)``; returns the address learned, or ""."""


@dataclass(frozen=True, slots=True)
class Target:
    """One service that holds per-customer data."""

    name: str
    delete: Delete
    tells_email: bool = False
    """It answers with the customer's address: asked before the others."""
    needs_email: bool = False
    """It keeps rows by address: without the address it cannot find them all."""


@dataclass(frozen=True, slots=True)
class Services:
    """The clients of every service admin asks."""

    customers: CustomersService
    signup: SignupService
    emails: EmailsService
    mailchimp: MailchimpService
    projects: ProjectsService
    balance: BalanceService
    stripe: StripeService
    usage: UsageService
    billing: BillingService
    v1: V1Service


def targets(services: Services) -> tuple[Target, ...]:
    """Every service to ask, ``customers`` first."""
    s = services

    async def customers(customer_id: str, email: str) -> str:
        done = await s.customers.delete_customer(
            customers_pb2.DeleteCustomerRequest(customer_id=customer_id)
        )
        return done.email

    async def signup(customer_id: str, email: str) -> str:
        await s.signup.delete_customer(
            signup_pb2.DeleteCustomerRequest(customer_id=customer_id, email=email)
        )
        return ""

    async def emails(customer_id: str, email: str) -> str:
        await s.emails.delete_customer(
            emails_pb2.DeleteCustomerRequest(customer_id=customer_id, email=email)
        )
        return ""

    async def mailchimp(customer_id: str, email: str) -> str:
        if email:  # the audience knows addresses only: without one there is nothing to find
            await s.mailchimp.delete_customer(mailchimp_pb2.DeleteCustomerRequest(email=email))
        return ""

    async def projects(customer_id: str, email: str) -> str:
        await s.projects.delete_customer(projects_pb2.DeleteCustomerRequest(id=customer_id))
        return ""

    async def balance(customer_id: str, email: str) -> str:
        await s.balance.delete_customer(balance_pb2.DeleteCustomerRequest(user_id=customer_id))
        return ""

    async def stripe(customer_id: str, email: str) -> str:
        await s.stripe.delete_customer(stripe_pb2.DeleteCustomerRequest(customer_id=customer_id))
        return ""

    async def usage(customer_id: str, email: str) -> str:
        await s.usage.delete_customer(usage_pb2.DeleteCustomerRequest(id=customer_id))
        return ""

    async def billing(customer_id: str, email: str) -> str:
        await s.billing.delete_customer(billing_pb2.DeleteCustomerRequest(customer_id=customer_id))
        return ""

    async def v1(customer_id: str, email: str) -> str:
        await s.v1.delete_customer(v1_pb2.DeleteCustomerRequest(id=customer_id))
        return ""

    return (
        Target("customers", customers, tells_email=True),
        Target("signup", signup, needs_email=True),
        Target("emails", emails, needs_email=True),
        Target("mailchimp", mailchimp, needs_email=True),
        Target("projects", projects),
        Target("balance", balance),
        Target("stripe", stripe),
        Target("usage", usage),
        Target("billing", billing),
        Target("v1", v1),
    )
