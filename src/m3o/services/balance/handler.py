"""The balance service's RPCs: validation and roles here, the work in :mod:`balances`.

Credits and debits name a customer that must exist (customers.Read, with the service's own
account); reading a balance does not ask (an unknown customer simply has 0).
"""

from __future__ import annotations

from m3o.runtime.auth import (
    CallContext,
    is_customer,
    verify_admin,
    verify_self_or_admin,
)
from m3o.runtime.errors import BadRequest, M3OError, NotFound, Unauthorized
from m3o.runtime.logging import get_logger
from m3o.runtime.money import check_amount
from m3o.runtime.rpc.calls import Calls
from m3o.runtime.store import SessionFactory
from m3o.services.balance import ledger
from m3o.services.balance.balances import Balances
from m3o.services.balance.entries import Entry
from m3o.services.balance.proto import balance_pb2 as pb
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_KEY_LENGTH",
    "MAX_LIST_LIMIT",
    "MAX_REFERENCE_LENGTH",
    "SYSTEM",
    "TRANSFER",
    "Balance",
]

_log = get_logger(__name__)
_calls = Calls("balance.customers_read_failed")

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_REFERENCE_LENGTH = 500
MAX_KEY_LENGTH = 255
SYSTEM = "system"
"""``type`` of the events of Increment and Decrement."""
TRANSFER = "transfer"
"""``type`` of the events of a Transfer."""
DEFAULT_TRANSFER_REFERENCE = "Transfer"


class Balance:
    """Implements ``balance.Balance`` (see ``proto/balance.proto``)."""

    def __init__(
        self, *, sessions: SessionFactory, balances: Balances, customers: CustomersService
    ) -> None:
        self._sessions = sessions
        self._balances = balances
        self._customers = customers

    async def increment(
        self, request: pb.IncrementRequest, ctx: CallContext
    ) -> pb.IncrementResponse:
        balance = await self._adjust(ctx, request, sign=1)
        return pb.IncrementResponse(new_balance=balance)

    async def decrement(
        self, request: pb.DecrementRequest, ctx: CallContext
    ) -> pb.DecrementResponse:
        balance = await self._adjust(ctx, request, sign=-1)
        return pb.DecrementResponse(new_balance=balance)

    async def _adjust(
        self, ctx: CallContext, request: pb.IncrementRequest | pb.DecrementRequest, sign: int
    ) -> int:
        account = verify_admin(ctx)
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing customer ID")
        check_amount(ctx.endpoint, "Delta", request.delta)
        _check_reference(ctx, request.reference, required=True)
        if len(request.idempotency_key) > MAX_KEY_LENGTH:
            raise BadRequest(
                ctx.endpoint, f"Idempotency key is longer than {MAX_KEY_LENGTH} characters"
            )
        await self._check_customer(ctx, customer_id)
        entry = Entry(
            customer_id=customer_id,
            delta=sign * request.delta,
            reference=request.reference,
            kind=SYSTEM,
            visible=request.visible,
            idempotency_key=request.idempotency_key,
        )
        applied = await self._balances.apply(ctx.endpoint, [entry], actioned_by=account.id)
        return applied.balances[customer_id]

    async def current(self, request: pb.CurrentRequest, ctx: CallContext) -> pb.CurrentResponse:
        customer_id = _target(ctx, request.customer_id)
        balance = await self._balances.current(customer_id)
        return pb.CurrentResponse(current_balance=balance)

    async def list_adjustments(
        self, request: pb.ListAdjustmentsRequest, ctx: CallContext
    ) -> pb.ListAdjustmentsResponse:
        customer_id = _target(ctx, request.customer_id)
        if not 0 <= request.limit <= MAX_LIST_LIMIT:
            raise BadRequest(ctx.endpoint, f"limit must be between 0 and {MAX_LIST_LIMIT}")
        if request.offset < 0:
            raise BadRequest(ctx.endpoint, "offset must not be negative")
        visible_only = ctx.account is not None and is_customer(ctx.account)
        async with self._sessions() as session:
            found = await ledger.page(
                session,
                customer_id,
                visible_only=visible_only,
                limit=request.limit or DEFAULT_LIST_LIMIT,
                offset=request.offset,
            )
        return pb.ListAdjustmentsResponse(
            adjustments=[
                pb.Adjustment(
                    id=entry.id,
                    created=int(entry.created.timestamp()),
                    delta=entry.delta,
                    reference=entry.reference,
                    meta=dict(entry.meta),
                )
                for entry in found
            ]
        )

    async def transfer(self, request: pb.TransferRequest, ctx: CallContext) -> pb.TransferResponse:
        account = verify_admin(ctx)
        from_id, to_id = request.from_id.strip(), request.to_id.strip()
        if not from_id:
            raise BadRequest(ctx.endpoint, "Missing from ID")
        if not to_id:
            raise BadRequest(ctx.endpoint, "Missing to ID")
        if from_id == to_id:
            raise BadRequest(ctx.endpoint, "Cannot transfer to the same customer")
        check_amount(ctx.endpoint, "Amount", request.amount)
        _check_reference(ctx, request.reference, required=False)
        await self._check_customer(ctx, from_id)
        await self._check_customer(ctx, to_id)
        reference = request.reference or DEFAULT_TRANSFER_REFERENCE
        entries = [
            Entry(from_id, -request.amount, reference, TRANSFER, visible=request.visible),
            Entry(to_id, request.amount, reference, TRANSFER, visible=request.visible),
        ]
        await self._balances.apply(
            ctx.endpoint, entries, actioned_by=account.id, no_overdraft=frozenset({from_id})
        )
        return pb.TransferResponse()

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, ctx: CallContext
    ) -> pb.DeleteCustomerResponse:
        verify_admin(ctx)
        customer_id = request.user_id.strip()
        if not customer_id:
            raise BadRequest(ctx.endpoint, "Missing user ID")
        await self._balances.remove(customer_id)
        return pb.DeleteCustomerResponse()

    async def _check_customer(self, ctx: CallContext, customer_id: str) -> None:
        """BadRequest unless ``customer_id`` is a customer (not deleted)."""
        try:
            await self._customers.read(customers_pb.ReadRequest(id=customer_id))
        except NotFound:
            raise BadRequest(ctx.endpoint, "Customer not found") from None
        except M3OError as exc:
            raise _calls.failure(ctx, "customers.read", exc, customer_id=customer_id) from None


def _target(ctx: CallContext, customer_id: str) -> str:
    """The customer a read names (empty: the caller), once the caller may read it."""
    if ctx.account is None:
        raise Unauthorized(ctx.endpoint, "Unauthorized")
    customer_id = customer_id.strip() or ctx.account.id
    verify_self_or_admin(ctx, customer_id)
    return customer_id


def _check_reference(ctx: CallContext, reference: str, *, required: bool) -> None:
    if required and not reference.strip():
        raise BadRequest(ctx.endpoint, "Missing reference")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise BadRequest(
            ctx.endpoint, f"Reference is longer than {MAX_REFERENCE_LENGTH} characters"
        )
