"""Paid calls to helloworld in the platform tests, and the books they must leave agreeing:
what was charged, the monthly counter and the usage history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import redis

from m3o.runtime.rpc.jsonmap import message_to_dict
from m3o.services.helloworld import catalog
from m3o.services.usage.counters import TOTAL, monthly_key
from support.platform import CALL_PATH, Api, Customer, call, new_customer, until

__all__ = [
    "COUNTERS_PREFIX",
    "HOLDS",
    "Books",
    "burst",
    "call_status",
    "paid_helloworld_customer",
]

COUNTERS_PREFIX = "m3o:"
"""The platform tests' counter store prefix in Redis."""
HOLDS = COUNTERS_PREFIX + "v1:holds"
"""The gateways' book of holds."""


async def paid_helloworld_customer(
    api: Api,
    client: httpx.AsyncClient,
    url: str,
    *,
    price: int,
    funds: int,
    other_gateways: Sequence[str] = (),
) -> Customer:
    """Helloworld published with Helloworld.Call at ``price`` and no free calls; a customer
    with ``funds`` and a key, once the gateway at ``url`` prices the call, and each of
    ``other_gateways`` too (a gateway sees a publication at its catalog's next poll, up to
    a second later: a load sent to one that has not would get 404, No such API)."""
    published = await api.as_admin("/publicapi/publish", message_to_dict(catalog.publish_request()))
    await api.as_admin(
        "/publicapi/update",
        {
            "api": {
                "id": str(published["api"]["id"]),
                "pricing": {"Helloworld.Call": price, "Helloworld.Stream": catalog.STREAM_PRICE},
                "quotas": {"Helloworld.Call": 0, "Helloworld.Stream": 0},
            }
        },
    )
    # The probe pays for itself: the monthly free quota only covers free endpoints.
    probe = await new_customer(api, "probe", funds)

    for gateway in (url, *other_gateways):

        async def priced(gateway: str = gateway) -> bool:
            outcome = await call(client, [gateway], 0, probe.key)
            return bool(outcome.price == str(price))

        await until(priced, f"the new price on the gateway at {gateway}", seconds=10)
    return await new_customer(api, "payer", funds)


class Books:
    """A customer's charges, monthly counter and history, as the platform reports them."""

    def __init__(
        self, api: Api, counters: redis.Redis, customer_id: str, *, price: int, funds: int
    ) -> None:
        self._api = api
        self._counters = counters
        self._customer = customer_id
        self._price = price
        self._funds = funds
        self.last: tuple[int, int, int] | None = None
        """What :meth:`agree` read last: (charged, monthly, history)."""

    async def read(self) -> tuple[int, int, int]:
        """(units charged: funds less the balance, the monthly ``total`` counter, the calls
        in the usage history)."""
        current = await self._api.as_admin("/balance/current", {"customer_id": self._customer})
        charged = self._funds - int(current.get("current_balance", 0))
        key = COUNTERS_PREFIX + monthly_key(self._customer, TOTAL, datetime.now(UTC))
        monthly = int(self._counters.get(key) or 0)
        read = await self._api.as_admin("/usage/read", {"customer_id": self._customer})
        records = read.get("usage", {}).get("helloworld", {}).get("records", [])
        history = sum(int(record.get("requests", 0)) for record in records)
        return charged, monthly, history

    async def agree(self) -> bool:
        """Whether charges, counter and history agree (and some call was counted)."""
        started = time.monotonic()
        self.last = charged, monthly, history = await self.read()
        assert time.monotonic() - started < 10
        return monthly > 0 and charged == self._price * monthly == self._price * history


async def call_status(client: httpx.AsyncClient, url: str, key: str, name: str) -> int:
    """The status of one helloworld call through the gateway at ``url`` (0: no answer)."""
    try:
        response = await client.post(
            f"{url}{CALL_PATH}", json={"name": name}, headers={"Authorization": f"Bearer {key}"}
        )
    except httpx.HTTPError:
        return 0
    return response.status_code


async def burst(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    *,
    calls: int,
    in_flight: int,
    answered: asyncio.Event,
    after: int,
) -> list[int]:
    """``calls`` helloworld calls, ``in_flight`` at a time, setting ``answered`` once
    ``after`` have had their outcome; the status of each (0: no answer)."""
    statuses: list[int] = []
    gate = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with gate:
            statuses.append(await call_status(client, url, key, f"n{n}"))
            if len(statuses) >= after:
                answered.set()

    await asyncio.gather(*(one(n) for n in range(calls)))
    return statuses
