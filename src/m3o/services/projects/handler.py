"""The projects service: Create, Read, List and DeleteCustomer.

Who may do what:

- a customer administers exactly one billing account, its own (its customer id): it
  creates projects billed to it and lists them; it reads and lists the projects it is a
  member of;
- an admin may create a project for any existing billing account (the billing account's
  customer becomes its admin), and read and list any;
- a service may read any project, list any billing account's projects and delete a
  customer's projects.

Every project change and its event are written in one transaction (the outbox), under the
billing account's row lock, so the project limit holds under concurrent Creates.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from m3o.events.projects import TOPIC
from m3o.runtime.auth import (
    Account,
    CallContext,
    is_admin,
    is_customer,
    is_service,
    verify_admin,
    verify_customer,
)
from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import (
    BadRequest,
    Forbidden,
    M3OError,
    NotFound,
    Unauthorized,
)
from m3o.runtime.events import Publisher
from m3o.runtime.logging import get_logger
from m3o.runtime.rpc.calls import Calls
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService
from m3o.services.projects import records
from m3o.services.projects.defaults import DefaultProjects
from m3o.services.projects.erasure import Erasure
from m3o.services.projects.limits import project_limit
from m3o.services.projects.proto import projects_pb2 as pb
from m3o.services.projects.records import MemberRecord, ProjectRecord

__all__ = ["MAX_NAME_LENGTH", "NOT_FOUND", "Projects"]

_log = get_logger(__name__)
_calls = Calls("projects.customers_call_failed")

MAX_NAME_LENGTH = 200
NOT_FOUND = "Project not found"
_NO_BILLING_ACCOUNT = "Billing account not found"


class Projects:
    """Implements ``projects.Projects`` (see ``proto/projects.proto``)."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        publisher: Publisher,
        customers: CustomersService,
        project_limits: Mapping[str, int],
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._customers = customers
        self._limits = dict(project_limits)
        self._clock = clock
        self._defaults = DefaultProjects(sessions=sessions, publisher=publisher, clock=clock)
        self._erasure = Erasure(sessions=sessions, publisher=publisher, clock=clock)

    async def create(self, request: pb.CreateRequest, ctx: CallContext) -> pb.CreateResponse:
        account = verify_customer(ctx)
        name = request.name.strip()
        if not name:
            raise BadRequest(ctx.endpoint, "Missing name")
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(ctx.endpoint, f"name is longer than {MAX_NAME_LENGTH} characters")
        billing_account = request.billing_account.strip()
        if is_customer(account):
            if billing_account and billing_account != account.id:
                raise Forbidden(ctx.endpoint, "Forbidden")
            billing_account = account.id
        elif not billing_account:
            raise BadRequest(ctx.endpoint, "Missing billing account")
        else:
            await self._check_customer_exists(ctx, billing_account)
        project = ProjectRecord(
            id=str(uuid.uuid4()),
            name=name,
            billing_account=billing_account,
            created=self._clock(),
            members=(MemberRecord(billing_account),),
        )
        async with transaction(self._sessions) as session:
            billing = await records.lock_account(session, billing_account)
            if billing.deleted is not None:
                raise NotFound(ctx.endpoint, _NO_BILLING_ACCOUNT)
            limit = project_limit(self._limits, billing.tier)
            if await records.count_billed_to(session, billing_account) >= limit:
                raise Forbidden(
                    ctx.endpoint,
                    f"The {billing.tier} tier allows {limit} project{'' if limit == 1 else 's'}",
                )
            await records.insert_project(session, project)
            await self._publisher.publish(TOPIC, project.created_event(), session=session)
        _log.info(
            "projects.created",
            project_id=project.id,
            billing_account=billing_account,
            caller_id=account.id,
        )
        return pb.CreateResponse(id=project.id, project=project.to_proto())

    async def read(self, request: pb.ReadRequest, ctx: CallContext) -> pb.ReadResponse:
        account = _verify_any_role(ctx)
        project_id = request.id.strip()
        if not project_id:
            raise BadRequest(ctx.endpoint, "Missing id")
        async with self._sessions() as session:
            found = await records.find(session, project_id)
        if found is None or (is_customer(account) and not found.has_member(account.id)):
            raise NotFound(ctx.endpoint, NOT_FOUND)
        return pb.ReadResponse(project=found.to_proto())

    async def list(self, request: pb.ListRequest, ctx: CallContext) -> pb.ListResponse:
        account = _verify_any_role(ctx)
        billing_account = request.billing_account_id.strip()
        if billing_account:
            if is_customer(account) and billing_account != account.id:
                raise Forbidden(ctx.endpoint, "Forbidden")
            async with self._sessions() as session:
                found = await records.billed_to(session, billing_account)
        elif is_customer(account):
            found = await self._defaults.projects_of(account.id)
        else:
            raise BadRequest(ctx.endpoint, "Missing billing_account_id")
        return pb.ListResponse(projects=[project.to_proto() for project in found])

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_admin(ctx)
        customer_id = request.id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing id")
        await self._erasure.erase(customer_id)
        return pb.DeleteCustomerResponse()

    async def _check_customer_exists(self, ctx: CallContext, customer_id: str) -> None:
        """NotFound unless ``customer_id`` is a customer that is not deleted."""
        try:
            await self._customers.read(customers_pb.ReadRequest(id=customer_id))
        except NotFound:
            raise NotFound(ctx.endpoint, _NO_BILLING_ACCOUNT) from None
        except M3OError as exc:
            raise _calls.failure(ctx, "read", exc) from None


def _verify_any_role(ctx: CallContext) -> Account:
    """Customers, admins and services pass; anything else is refused."""
    account = ctx.account
    if account is None:
        raise Unauthorized(ctx.endpoint, "Unauthorized")
    if is_customer(account) or is_admin(account) or is_service(account):
        return account
    raise Forbidden(ctx.endpoint, "Forbidden")
