"""The platform services the console calls: the same typed clients the platform API uses,
without credentials of their own. Every call carries the signed-in person's access token
(:attr:`m3o.console.web.Session.metadata`), so a page can do exactly what that person could
do with ``curl`` and the platform API, and nothing more."""

from __future__ import annotations

from dataclasses import dataclass

from m3o.runtime.rpc import Transport
from m3o.services.admin.proto.client import AdminClient
from m3o.services.auth.proto.client import AuthClient
from m3o.services.balance.proto.client import BalanceClient
from m3o.services.billing.proto.client import BillingClient
from m3o.services.customers.proto.client import CustomersClient
from m3o.services.explore.proto.client import ExploreClient
from m3o.services.oauth.proto.client import OauthClient
from m3o.services.publicapi.proto.client import PublicapiClient
from m3o.services.signup.proto.client import SignupClient
from m3o.services.usage.proto.client import UsageClient
from m3o.services.v1.proto.client import V1Client

__all__ = ["ConsoleClients"]


@dataclass(frozen=True, slots=True)
class ConsoleClients:
    """One client per service a page calls."""

    admin: AdminClient
    auth: AuthClient
    balance: BalanceClient
    billing: BillingClient
    customers: CustomersClient
    explore: ExploreClient
    oauth: OauthClient
    publicapi: PublicapiClient
    signup: SignupClient
    usage: UsageClient
    v1: V1Client

    @classmethod
    def over(cls, transport: Transport, *, timeout: float | None) -> ConsoleClients:
        """Clients reaching the services through ``transport``, each call with ``timeout``."""
        return cls(
            admin=AdminClient(transport, timeout=timeout),
            auth=AuthClient(transport, timeout=timeout),
            balance=BalanceClient(transport, timeout=timeout),
            billing=BillingClient(transport, timeout=timeout),
            customers=CustomersClient(transport, timeout=timeout),
            explore=ExploreClient(transport, timeout=timeout),
            oauth=OauthClient(transport, timeout=timeout),
            publicapi=PublicapiClient(transport, timeout=timeout),
            signup=SignupClient(transport, timeout=timeout),
            usage=UsageClient(transport, timeout=timeout),
            v1=V1Client(transport, timeout=timeout),
        )
