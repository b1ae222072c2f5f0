"""Who is calling: the Account in every call's context, and the role checks handlers use.

Roles (see the service specs):

- customer: type ``customer`` with scope ``customer``;
- admin: type ``user`` with scope ``admin``;
- service: type ``service`` with scope ``service`` (each service has its own account);
- apikey: type ``apikey``, owned by a project (metadata ``apikey_owner``).

``verify_customer`` passes customers and admins; ``verify_admin`` passes admins and
services. No account is Unauthorized; the wrong role is Forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from m3o.runtime.errors import Forbidden, Unauthorized, error_id

__all__ = [
    "ISSUER",
    "Account",
    "CallContext",
    "is_admin",
    "is_customer",
    "is_service",
    "verify_admin",
    "verify_customer",
    "verify_self_or_admin",
    "verify_service",
]

ISSUER = "micro"


@dataclass(frozen=True, slots=True)
class Account:
    """An authenticated identity. ``name`` is the email for customers."""

    id: str
    type: str
    issuer: str = ISSUER
    name: str = ""
    scopes: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a handler knows about the call besides its request.

    ``endpoint`` is the lower-cased ``<service>.<method>`` used as the id of errors
    (``customers.create``). ``deadline`` is a ``time.monotonic()`` instant or None.
    """

    service: str
    method: str
    account: Account | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    deadline: float | None = None

    @property
    def endpoint(self) -> str:
        return error_id(self.service, self.method)


def is_customer(account: Account) -> bool:
    return account.type == "customer" and account.has_scope("customer")


def is_admin(account: Account) -> bool:
    return account.type == "user" and account.has_scope("admin")


def is_service(account: Account) -> bool:
    return account.type == "service" and account.has_scope("service")


def _require(ctx: CallContext) -> Account:
    if ctx.account is None:
        raise Unauthorized(ctx.endpoint, "Unauthorized")
    return ctx.account


def verify_customer(ctx: CallContext) -> Account:
    """Customers and admins pass; anything else is refused."""
    account = _require(ctx)
    if is_customer(account) or is_admin(account):
        return account
    raise Forbidden(ctx.endpoint, "Forbidden")


def verify_admin(ctx: CallContext) -> Account:
    """Admins and services pass; anything else is refused."""
    account = _require(ctx)
    if is_admin(account) or is_service(account):
        return account
    raise Forbidden(ctx.endpoint, "Forbidden")


def verify_service(ctx: CallContext) -> Account:
    """Services pass (anonymous: Unauthorized); anything else is Forbidden."""
    account = _require(ctx)
    if is_service(account):
        return account
    raise Forbidden(ctx.endpoint, "Forbidden")


def verify_self_or_admin(ctx: CallContext, customer_id: str) -> Account:
    """The customer ``customer_id`` itself, an admin or a service; else Forbidden."""
    account = _require(ctx)
    if is_admin(account) or is_service(account):
        return account
    if is_customer(account) and account.id == customer_id:
        return account
    raise Forbidden(ctx.endpoint, "Forbidden")
