"""ListAPIRanks' data: computed from the history daily (and at start), stored, served.

The ranking covers the :data:`WINDOW_DAYS` whole days before today (UTC): the APIs by the
calls of everyone (the global customer's history), each API's top users and the top users
overall by their own history. Users are named by customers.Read: the customer's name, else
its generated name, else ``Anonymous`` (also for an id customers does not know, such as a
project that is not a customer's default one). Display names come from the catalog
(publicapi.List); an API it does not list, or a catalog that cannot be reached, shows the
API's name.

The result is stored in ``usage_ranks``, so every process serves the same ranking and a
restart serves the last one at once. If a computation fails (customers unreachable), the
previous ranking stays.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from m3o.runtime.clock import Clock, utc_now
from m3o.runtime.errors import M3OError, NotFound
from m3o.runtime.logging import get_logger
from m3o.runtime.store import SessionFactory, transaction
from m3o.services.customers.proto import customers_pb2 as customers_pb
from m3o.services.customers.proto.client import CustomersService
from m3o.services.publicapi.proto import publicapi_pb2 as publicapi_pb
from m3o.services.publicapi.proto.client import PublicapiService
from m3o.services.usage import history
from m3o.services.usage.counters import GLOBAL_CUSTOMER
from m3o.services.usage.proto import usage_pb2 as pb
from m3o.services.usage.ranking import Counted, rank
from m3o.services.usage.records import load_ranking, save_ranking

__all__ = ["ANONYMOUS", "WINDOW_DAYS", "Ranks"]

_log = get_logger(__name__)

WINDOW_DAYS = 30
ANONYMOUS = "Anonymous"


class Ranks:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        customers: CustomersService,
        publicapi: PublicapiService,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._customers = customers
        self._publicapi = publicapi
        self._clock = clock

    async def latest(self) -> pb.ListAPIRanksResponse:
        """The stored ranking; empty before the first computation."""
        async with self._sessions() as session:
            return await load_ranking(session)

    async def recompute(self) -> pb.ListAPIRanksResponse:
        """Compute the ranking from the history and store it."""
        today = self._clock().astimezone(UTC).date()
        first, last = today - timedelta(days=WINDOW_DAYS), today - timedelta(days=1)
        async with self._sessions() as session:
            totals = await history.totals_by_customer(session, first, last)
        api_totals = {t.path: t.requests for t in totals if t.customer_id == GLOBAL_CUSTOMER}
        ranking = rank(
            api_totals,
            (
                (t.customer_id, t.path, t.requests)
                for t in totals
                if t.customer_id != GLOBAL_CUSTOMER
            ),
        )
        names = _Names(self._customers)
        display = await self._display_names() if ranking.apis else {}
        response = pb.ListAPIRanksResponse()
        for position, api in enumerate(ranking.apis, start=1):
            response.ranks.append(
                pb.APIRankItem(
                    api_name=api.name,
                    position=position,
                    popularity=ranking.popularity[api.name],
                    top_users=await names.ranked(ranking.top_users.get(api.name, [])),
                    api_display_name=display.get(api.name) or api.name,
                )
            )
        response.global_top_users.extend(await names.ranked(ranking.global_top_users))
        async with transaction(self._sessions) as session:
            await save_ranking(session, response, self._clock())
        _log.info("usage.ranks_computed", apis=len(response.ranks))
        return response

    async def recompute_quietly(self) -> None:
        """:meth:`recompute` for the cron: a failure is logged and the last ranking stays."""
        try:
            await self.recompute()
        except M3OError as exc:
            _log.error(
                "usage.ranks_failed", kind=type(exc).__name__, error_id=exc.id, detail=exc.detail
            )

    async def _display_names(self) -> dict[str, str]:
        try:
            listed = await self._publicapi.list(publicapi_pb.ListRequest())
        except M3OError as exc:
            _log.warning("usage.catalog_unavailable", error_id=exc.id, detail=exc.detail)
            return {}
        return {api.name: api.display_name for api in listed.apis}


class _Names:
    """Customers' names for rankings, each looked up once."""

    def __init__(self, customers: CustomersService) -> None:
        self._customers = customers
        self._known: dict[str, str] = {}

    async def ranked(self, users: list[Counted]) -> list[pb.APIRankUserItem]:
        return [
            pb.APIRankUserItem(user_name=await self.name(user.name), position=position)
            for position, user in enumerate(users, start=1)
        ]

    async def name(self, customer_id: str) -> str:
        known = self._known.get(customer_id)
        if known is None:
            known = self._known[customer_id] = await self._look_up(customer_id)
        return known

    async def _look_up(self, customer_id: str) -> str:
        try:
            found = await self._customers.read(customers_pb.ReadRequest(id=customer_id))
        except NotFound:
            return ANONYMOUS
        customer = found.customer
        return customer.name or customer.meta.get("generated_name", "") or ANONYMOUS
