"""The gate's caches: tiers for a short while, admission requests per call shape and month."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from gateway.support import HELLO
from gateway.v1.support import Catalog, config_with, hello_entry, key_record, until_true
from m3o.gateway import directory
from m3o.gateway.v1.batching import AdmissionBatcher
from m3o.gateway.v1.gate import Admission, Gate
from m3o.gateway.v1.paths import parse_path
from m3o.gateway.v1.ports import PlannedCall
from m3o.gateway.v1.settings import PublicAPISettings
from m3o.gateway.v1.sources import PlatformQuotas
from m3o.gateway.v1.targets import Target, Targets
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import AdmissionRequest
from m3o.services.usage.counters import monthly_key, tier_key


class CountingQuotas(PlatformQuotas):
    def __init__(self, counters: CounterStore) -> None:
        super().__init__(counters, config_with())
        self.tiers = 0
        self.built: list[datetime] = []

    async def tier(self, customer_id: str) -> str:
        self.tiers += 1
        return await super().tier(customer_id)

    def request(self, call: PlannedCall, tier: str, now: datetime) -> AdmissionRequest:
        self.built.append(now)
        return super().request(call, tier, now)


class Balances:
    async def load(self, customer_id: str) -> None:
        return None


def _hello_call() -> Target:
    return Targets(Catalog(hello_entry()), directory(HELLO)).resolve(parse_path("helloworld/call"))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 31, 23, 59, tzinfo=UTC)
        self.tick = 0.0

    def utc(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.tick


async def test_admission_request_is_built_once_per_month_and_tier(
    counters: CounterStore,
) -> None:
    quotas, clock = CountingQuotas(counters), Clock()
    gate = Gate(
        AdmissionBatcher(counters), quotas, Balances(), now=clock.utc, clock=clock.monotonic
    )
    target = Targets(Catalog(hello_entry()), directory(HELLO)).resolve(
        parse_path("helloworld/call")
    )
    key = key_record()
    for _ in range(3):
        assert (await gate.admit(gate.plan(key, target), target)).charge == "free"
    assert len(quotas.built) == 1
    clock.now += timedelta(minutes=2)
    await gate.admit(gate.plan(key, target), target)
    assert len(quotas.built) == 2
    january = monthly_key(key.owner, "total", datetime(2024, 1, 1, tzinfo=UTC))
    february = monthly_key(key.owner, "total", datetime(2024, 2, 1, tzinfo=UTC))
    assert (await counters.get(january), await counters.get(february)) == (3, 1)


async def _admitted_then_made_pro(
    counters: CounterStore,
) -> tuple[Callable[[], Awaitable[Admission]], CountingQuotas, Clock]:
    """A gate keeping tiers for 1 s, a call admitted on the free tier, then the customer
    made pro; the call's admission, to make again."""
    quotas, clock = CountingQuotas(counters), Clock()
    gate = Gate(
        AdmissionBatcher(counters),
        quotas,
        Balances(),
        tier_ttl=timedelta(seconds=1),
        now=clock.utc,
        clock=clock.monotonic,
    )
    target = _hello_call()

    async def admit() -> Admission:
        return await gate.admit(gate.plan(key_record(), target), target)

    await admit()
    await counters.set_value(tier_key("customer-1"), "pro")
    return admit, quotas, clock


async def test_a_tier_unused_for_its_ttl_is_read_again_before_the_call(
    counters: CounterStore,
) -> None:
    admit, quotas, clock = await _admitted_then_made_pro(counters)
    clock.tick += 1.1
    await admit()
    assert quotas.tiers == 2
    assert quotas.built[-1] == clock.now
    assert len(quotas.built) == 2  # free, then pro: this call was admitted on pro


async def test_a_tier_in_use_is_renewed_in_the_background_after_half_its_ttl(
    counters: CounterStore,
) -> None:
    admit, quotas, clock = await _admitted_then_made_pro(counters)
    clock.tick += 0.4
    await admit()
    assert quotas.tiers == 1
    clock.tick += 0.2
    # Still within its ttl: admitted on the tier read before, which is read again meanwhile.
    await admit()
    assert len(quotas.built) == 1
    await until_true(lambda: quotas.tiers >= 2)
    await admit()
    assert len(quotas.built) == 2  # free, then pro, before the first read lapsed
    assert quotas.tiers == 2


def test_settings_come_from_the_v1_config() -> None:
    config = config_with(
        {
            "v1": {
                "fail_open_free": True,
                "upstream_timeout": "5s",
                "key_cache_ttl": "2s",
                "max_answer_bytes": 4096,
            }
        }
    )
    settings = PublicAPISettings.from_config(config.v1, max_body_bytes=10, call_timeout=3.0)
    assert settings == PublicAPISettings(
        upstream_timeout=5.0,
        key_cache_ttl=timedelta(seconds=2),
        fail_open_free=True,
        max_body_bytes=10,
        call_timeout=3.0,
        max_answer_bytes=4096,
    )
