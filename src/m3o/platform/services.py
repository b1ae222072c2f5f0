"""The services a platform process can run, in start-up order (auth first), and every
table of the platform: the runtime's and those the services own.

Adding a service means adding its definition here once: processes, migrations and the
tests take their lists from this module.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from m3o.runtime.config import tables as config_tables
from m3o.runtime.counters import tables as counters_tables
from m3o.runtime.events import tables as events_tables
from m3o.runtime.service import ServiceDefinition
from m3o.services.admin.service import definition as admin
from m3o.services.alerts.service import definition as alerts
from m3o.services.auth.service import definition as auth
from m3o.services.balance.service import definition as balance
from m3o.services.billing.service import definition as billing
from m3o.services.customers.service import definition as customers
from m3o.services.emails.service import definition as emails
from m3o.services.endtoend.service import definition as endtoend
from m3o.services.explore.service import definition as explore
from m3o.services.helloworld.service import definition as helloworld
from m3o.services.mailchimp.service import definition as mailchimp
from m3o.services.mixpanel.service import definition as mixpanel
from m3o.services.oauth.service import definition as oauth
from m3o.services.projects.service import definition as projects
from m3o.services.publicapi.service import definition as publicapi
from m3o.services.signup.service import definition as signup
from m3o.services.status.service import definition as status
from m3o.services.stripe.service import definition as stripe
from m3o.services.usage.service import definition as usage
from m3o.services.v1.service import definition as v1

__all__ = ["ACCOUNT_NAMES", "METADATA", "SERVICES", "by_name"]

SERVICES: tuple[ServiceDefinition, ...] = (
    auth,
    customers,
    emails,
    alerts,
    projects,
    publicapi,
    explore,
    balance,
    stripe,
    usage,
    billing,
    v1,
    signup,
    oauth,
    mailchimp,
    mixpanel,
    admin,
    helloworld,
    status,
    endtoend,
)

ACCOUNT_NAMES: tuple[str, ...] = (*(s.account_id for s in SERVICES), "gateway", "platform")
"""Every name that gets a service account: the services, the HTTP front, the root."""

METADATA: tuple[MetaData, ...] = (
    events_tables.metadata,
    counters_tables.metadata,
    config_tables.metadata,
    *(s.metadata for s in SERVICES if s.metadata is not None),
)
"""The tables of the platform, the runtime's first: what migrations build and check."""


def by_name(name: str) -> ServiceDefinition:
    for definition in SERVICES:
        if definition.name == name:
            return definition
    known = ", ".join(s.name for s in SERVICES)
    raise KeyError(f"unknown service {name!r}; known: {known}")
