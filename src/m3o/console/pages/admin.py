"""The admin pages: finding a customer and acting on their account. Admins only (the
``admin`` account signs in on ``/console/login`` with its id and password); anyone else is
sent to the login page with a message, and the services refuse their calls anyway.

- ``GET /console/admin``: find a customer by email or id (``?q=``; ``Customers.Read``),
  and the newest customers (``Customers.List``, which pages oldest first: the last page is
  found with a few one-row probes, see :func:`newest`).
- ``GET /console/admin/customers/<id>``: the customer (``Customers.Read``), their balance
  (``Balance.Current``) and newest ledger entries (``Balance.ListAdjustments``, every
  entry, the ones hidden from the customer too), and the forms below.
- ``POST .../credit``: credits an amount in dollars with a reason the customer sees
  (``Balance.Increment``, visible). The form carries an idempotency key made when it is
  rendered, so a form submitted twice credits once; a form shown again after an error keeps
  its key (the credit may have been applied before the error), except after a Conflict
  (the key was used for another amount: that form was already used).
- ``POST .../ban`` and ``POST .../unban``: ``Customers.Ban`` (no more logins, every token
  stops working) and ``Customers.Unban`` (back to verified, with a random password: the
  customer resets theirs).
- ``GET|POST .../delete``: deletes the customer's data in every service
  (``Admin.DeleteData``) once the admin has typed the customer's email to confirm.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from m3o.console.amounts import AmountError, parse_dollars
from m3o.console.web import BASE, Console, Session
from m3o.runtime.errors import BadRequest, Conflict, NotFound, Unavailable
from m3o.runtime.money import dollars
from m3o.services.admin.proto import admin_pb2
from m3o.services.balance.proto import balance_pb2
from m3o.services.customers.proto import customers_pb2

__all__ = ["newest", "routes"]

T = TypeVar("T")

RECENT_CUSTOMERS = 20
"""How many of the newest customers the admin's front page lists."""
RECENT_ENTRIES = 20
"""How many of a customer's newest ledger entries their page shows."""
MAX_REASON = 500
"""The longest reference ``Balance.Increment`` takes."""
KEY_PREFIX = "console-credit-"
"""Idempotency keys of the credits made here: this prefix and the form's random key."""

_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_VERIFIED = {"unverified": "No", "verified": "Yes", "active": "Yes"}


async def newest(
    page: Callable[[int, int], Awaitable[Sequence[T]]], count: int, *, first: int = 100
) -> list[T]:
    """The last ``count`` items, newest first, of a list that ``page(limit, offset)`` gives
    oldest first: one page when the list is short, else the list's length is found by
    doubling then halving one-item probes (a few dozen calls for millions of items)."""
    head = list(await page(first, 0))
    if len(head) < first:
        return head[::-1][:count]
    present, step = first - 1, first
    absent = -1
    while absent < 0:
        if await page(1, present + step):
            present, step = present + step, step * 2
        else:
            absent = present + step
    while absent - present > 1:
        middle = (present + absent) // 2
        if await page(1, middle):
            present = middle
        else:
            absent = middle
    length = present + 1
    tail = list(await page(count, max(0, length - count)))
    return tail[::-1]


@dataclass(frozen=True, slots=True)
class CreditForm:
    """What the credit form shows: the fields and the key that makes a repeat harmless."""

    key: str
    amount: str = ""
    reason: str = ""
    error: str = ""

    @classmethod
    def fresh(cls) -> CreditForm:
        return cls(key=secrets.token_urlsafe(18))


class _AdminPages:
    """The handlers, over ``console``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.clients = console.clients

    async def find(self, request: Request) -> Response:
        session = await self.console.require(request, admin=True)
        metadata = self.console.metadata(request, session)
        query = request.query_params.get("q", "").strip()
        matches: list[customers_pb2.Customer] = []
        error = ""
        if query:
            wanted = (
                customers_pb2.ReadRequest(email=query)
                if "@" in query
                else customers_pb2.ReadRequest(id=query)
            )
            try:
                found = await self.clients.customers.read(wanted, metadata=metadata)
                matches.append(found.customer)
            except NotFound:
                pass
            except BadRequest as exc:
                error = exc.detail

        async def customers(limit: int, offset: int) -> Sequence[customers_pb2.Customer]:
            listed = await self.clients.customers.list(
                customers_pb2.ListRequest(limit=limit, offset=offset), metadata=metadata
            )
            return list(listed.customers)

        context = {
            "title": "Admin",
            "query": query,
            "matches": matches,
            "error": error,
            "recent": await newest(customers, RECENT_CUSTOMERS),
        }
        return self.console.render(
            request, "admin/index.html", context, status=400 if error else 200
        )

    async def customer(self, request: Request) -> Response:
        session = await self.console.require(request, admin=True)
        return await self._customer_page(request, session, request.path_params["id"])

    async def _customer_page(
        self,
        request: Request,
        session: Session,
        customer_id: str,
        *,
        credit: CreditForm | None = None,
        status: int = 200,
    ) -> Response:
        metadata = self.console.metadata(request, session)
        found = await self.clients.customers.read(
            customers_pb2.ReadRequest(id=customer_id), metadata=metadata
        )
        customer = found.customer
        balance = await self.clients.balance.current(
            balance_pb2.CurrentRequest(customer_id=customer.id), metadata=metadata
        )

        async def entries(limit: int, offset: int) -> Sequence[balance_pb2.Adjustment]:
            listed = await self.clients.balance.list_adjustments(
                balance_pb2.ListAdjustmentsRequest(
                    customer_id=customer.id, limit=limit, offset=offset
                ),
                metadata=metadata,
            )
            return list(listed.adjustments)

        context: dict[str, Any] = {
            "title": customer.email or customer.id,
            "customer": customer,
            "verified": _VERIFIED.get(customer.status, "Not known"),
            "balance": balance.current_balance,
            "entries": await newest(entries, RECENT_ENTRIES),
            "credit": credit or CreditForm.fresh(),
        }
        return self.console.render(request, "admin/customer.html", context, status=status)

    async def credit(self, request: Request) -> Response:
        session = await self.console.require(request, admin=True)
        form = await self.console.form(request)
        customer_id = request.path_params["id"]
        amount = str(form.get("amount", ""))
        reason = str(form.get("reason", "")).strip()
        sent_key = str(form.get("idempotency_key", ""))
        key = sent_key if _FORM_KEY.fullmatch(sent_key) else ""

        async def again(error: str, status: int, *, key: str = key) -> Response:
            shown = CreditForm(key or CreditForm.fresh().key, amount, reason, error)
            return await self._customer_page(
                request, session, customer_id, credit=shown, status=status
            )

        try:
            units = _checked_credit(key, amount, reason)
        except AmountError as exc:
            return await again(str(exc), 400)
        try:
            credited = await self.clients.balance.increment(
                balance_pb2.IncrementRequest(
                    customer_id=customer_id,
                    delta=units,
                    idempotency_key=KEY_PREFIX + key,
                    visible=True,
                    reference=reason,
                ),
                metadata=self.console.metadata(request, session),
            )
        except Conflict:
            return await again(
                "This form was already used for another credit: check the ledger below "
                "before crediting again.",
                409,
                key="",
            )
        except (BadRequest, Unavailable) as exc:
            return await again(exc.detail, exc.code)
        return self.console.redirect(
            request,
            _customer_url(customer_id),
            flash=f"Credited {dollars(units)}. The balance is now {dollars(credited.new_balance)}.",
        )

    async def ban(self, request: Request) -> Response:
        return await self._ban(request, banned=True)

    async def unban(self, request: Request) -> Response:
        return await self._ban(request, banned=False)

    async def _ban(self, request: Request, *, banned: bool) -> Response:
        session = await self.console.require(request, admin=True)
        await self.console.form(request)
        customer_id = request.path_params["id"]
        metadata = self.console.metadata(request, session)
        if banned:
            await self.clients.customers.ban(
                customers_pb2.BanRequest(id=customer_id), metadata=metadata
            )
            done = "Banned: the customer can no longer sign in or call the API."
        else:
            await self.clients.customers.unban(
                customers_pb2.UnbanRequest(id=customer_id), metadata=metadata
            )
            done = "Unbanned: the customer must reset their password to sign in."
        return self.console.redirect(request, _customer_url(customer_id), flash=done)

    async def delete(self, request: Request) -> Response:
        session = await self.console.require(request, admin=True)
        metadata = self.console.metadata(request, session)
        found = await self.clients.customers.read(
            customers_pb2.ReadRequest(id=request.path_params["id"]), metadata=metadata
        )
        customer = found.customer
        expected = customer.email or customer.id

        def confirm(typed: str = "", error: str = "", status: int = 200) -> Response:
            context = {
                "title": f"Delete {expected}",
                "customer": customer,
                "expected": expected,
                "typed": typed,
                "error": error,
            }
            return self.console.render(request, "admin/delete.html", context, status=status)

        if request.method == "GET":
            return confirm()
        form = await self.console.form(request)
        typed = str(form.get("confirm", "")).strip()
        if typed.lower() != expected.lower():
            return confirm(typed, f"Type {expected} exactly to confirm.", 400)
        try:
            deleted = await self.clients.admin.delete_data(
                admin_pb2.DeleteDataRequest(tenant_id=customer.id), metadata=metadata
            )
        except (Conflict, Unavailable) as exc:
            return confirm(typed, exc.detail, exc.code)
        services = ", ".join(deleted.services) or "none"
        return self.console.redirect(
            request,
            f"{BASE}/admin",
            flash=f"Deleted every record of {expected} (services: {services}).",
        )


def _customer_url(customer_id: str) -> str:
    return f"{BASE}/admin/customers/{customer_id}"


def _checked_credit(key: str, amount: str, reason: str) -> int:
    """The amount of a credit form in units, once the form is complete; raises
    :class:`AmountError` saying what is missing or wrong."""
    if not key:
        raise AmountError("This form has expired: check the amount and send it again.")
    units = parse_dollars(amount)
    if not reason:
        raise AmountError("Enter a reason: the customer sees it in their ledger.")
    if len(reason) > MAX_REASON:
        raise AmountError(f"The reason must be at most {MAX_REASON} characters.")
    return units


def routes(console: Console) -> list[BaseRoute]:
    """The admin pages."""
    pages = _AdminPages(console)
    customer = "/admin/customers/{id}"
    return [
        console.route("/admin", pages.find),
        console.route(customer, pages.customer),
        console.route(customer + "/credit", pages.credit, methods=["POST"]),
        console.route(customer + "/ban", pages.ban, methods=["POST"]),
        console.route(customer + "/unban", pages.unban, methods=["POST"]),
        console.route(customer + "/delete", pages.delete, methods=["GET", "POST"]),
    ]
