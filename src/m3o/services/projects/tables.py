"""Tables the projects service owns.

- ``projects_projects``: every project, with the billing account (a customer id) that pays.
- ``projects_members``: who belongs to which project, with their roles.
- ``projects_accounts``: one row per billing account (a customer id): its subscription tier
  as learnt from customers/SubscriptionChanged (with the time of that event, so an older
  event arriving late changes nothing), whether its default project was made, and whether
  the customer was deleted. Every change to an account's projects locks this row first,
  so the project limit and "one default project" hold under concurrency.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, String, Table

from m3o.runtime.store import UTCDateTime, new_metadata

__all__ = ["accounts", "members", "metadata", "projects"]

metadata = new_metadata()

projects = Table(
    "projects_projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("billing_account", String(36), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Index("ix_projects_projects_billing_account_created", "billing_account", "created"),
)

members = Table(
    "projects_members",
    metadata,
    Column("project_id", ForeignKey(projects.c.id, ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(36), primary_key=True),
    Column("roles", JSON, nullable=False),
    Index("ix_projects_members_member_id", "member_id"),
)

accounts = Table(
    "projects_accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tier", String(64), nullable=False),
    # time of the SubscriptionChanged event that set the tier; None: never changed
    Column("tier_changed", UTCDateTime, nullable=True),
    # the default project was made (it is made once, never again)
    Column("default_made", Boolean, nullable=False),
    # when the customer was deleted; None while it exists
    Column("deleted", UTCDateTime, nullable=True),
)
