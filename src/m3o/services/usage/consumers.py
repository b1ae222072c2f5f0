"""What usage does on ``customers`` and ``projects`` events.

Counters are kept per project (a customer's default project has the customer's id), and a
subscription is the billing account's, the customer who pays:

- customers/SubscriptionChanged: the tier of the customer and of every project it pays for
  (projects.List by billing account) becomes the event's, as of the event's time, so a late
  older event changes nothing;
- projects/ProjectCreated: the new project takes its billing account's tier;
- customers/Deleted, projects/ProjectDeleted: the customer's (project's) counters, history
  and tier are removed.

Every step is idempotent, so redeliveries are harmless; a failure (projects unreachable)
is retried by the bus. Request events are counted by :mod:`m3o.services.usage.recording`.
"""

from __future__ import annotations

from m3o.events import customers, projects
from m3o.runtime.events import Delivery
from m3o.runtime.logging import get_logger
from m3o.runtime.service import Consumer
from m3o.services.projects.proto import projects_pb2 as projects_pb
from m3o.services.projects.proto.client import ProjectsService
from m3o.services.usage.erasure import Erasure
from m3o.services.usage.tiers import Tiers

__all__ = ["AccountEvents"]

_log = get_logger(__name__)

_CustomerType = customers.EventType
_ProjectType = projects.EventType


class AccountEvents:
    """Consumes ``customers`` and ``projects`` in the groups ``usage-customers`` and
    ``usage-projects``."""

    def __init__(self, *, tiers: Tiers, projects: ProjectsService, erasure: Erasure) -> None:
        self._tiers = tiers
        self._projects = projects
        self._erasure = erasure

    def consumers(self) -> list[Consumer]:
        return [
            Consumer(customers.TOPIC, self.handle_customer),
            Consumer(projects.TOPIC, self.handle_project),
        ]

    async def handle_customer(self, delivery: Delivery) -> None:
        event = delivery.decode(customers.Event)
        if event.type not in (
            _CustomerType.EventTypeSubscriptionChanged,
            _CustomerType.EventTypeDeleted,
        ):
            return
        customer_id = event.customer.id
        if not customer_id:
            _log.warning("usage.event_skipped", event_id=delivery.id, reason="no customer")
            return
        if event.type == _CustomerType.EventTypeDeleted:
            await self._erasure.erase(customer_id)
            return
        tier = event.subscription_changed.tier
        paid = await self._projects.list(projects_pb.ListRequest(billing_account_id=customer_id))
        holders = [customer_id, *(project.id for project in paid.projects if project.id)]
        await self._tiers.change(holders, tier, delivery.time)
        _log.info("usage.tier_changed", customer_id=customer_id, tier=tier, projects=len(holders))

    async def handle_project(self, delivery: Delivery) -> None:
        event = delivery.decode(projects.Event)
        if event.type == _ProjectType.EventTypeProjectCreated:
            created = event.project_created
            if created.id and created.billing_account and created.id != created.billing_account:
                tier = await self._tiers.tier(created.billing_account)
                await self._tiers.change([created.id], tier, delivery.time)
        elif event.type == _ProjectType.EventTypeProjectDeleted and event.project_deleted.id:
            await self._erasure.erase(event.project_deleted.id)
