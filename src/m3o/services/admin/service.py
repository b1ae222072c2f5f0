"""Wiring of the admin service."""

from __future__ import annotations

from datetime import timedelta

from m3o.runtime.service import Cron, Dependencies, Handler, ServiceDefinition, ServiceParts
from m3o.services.admin import tables
from m3o.services.admin.consumers import CustomerDeletions
from m3o.services.admin.deletion import Deletions
from m3o.services.admin.handler import Admin
from m3o.services.admin.proto.client import SPEC
from m3o.services.admin.targets import Services, targets
from m3o.services.balance.proto.client import BalanceClient
from m3o.services.billing.proto.client import BillingClient
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.emails.proto.client import EmailsClient
from m3o.services.mailchimp.proto.client import MailchimpClient
from m3o.services.projects.proto.client import ProjectsClient
from m3o.services.signup.proto.client import SignupClient
from m3o.services.stripe.proto.client import StripeClient
from m3o.services.usage.proto.client import UsageClient
from m3o.services.v1.proto.client import V1Client

__all__ = ["RESUME_EVERY", "definition"]

RESUME_EVERY = timedelta(minutes=10)
"""How often deletions some service has not finished are run again."""


async def _build(deps: Dependencies) -> ServiceParts:
    get = deps.clients.get
    services = Services(
        customers=get(CustomersClient),
        signup=get(SignupClient),
        emails=get(EmailsClient),
        mailchimp=get(MailchimpClient),
        projects=get(ProjectsClient),
        balance=get(BalanceClient),
        stripe=get(StripeClient),
        usage=get(UsageClient),
        billing=get(BillingClient),
        v1=get(V1Client),
    )
    deletions = Deletions(sessions=deps.sessions, targets=targets(services))
    return ServiceParts(
        handlers=[Handler(SPEC, Admin(deletions=deletions))],
        consumers=[CustomerDeletions(deletions=deletions).consumer()],
        crons=[Cron("resume-deletions", RESUME_EVERY, deletions.resume)],
    )


definition = ServiceDefinition(
    name="admin",
    account="admin-service",  # "admin" is the operator's account
    build=_build,
    specs=(SPEC,),
    metadata=tables.metadata,
)
