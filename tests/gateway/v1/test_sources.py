"""The platform's implementations of the gateway's ports: keys and admission names."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import UTC, datetime

from gateway.v1.support import config_with
from m3o.gateway.v1.ports import PlannedCall
from m3o.gateway.v1.sources import PlatformQuotas, V1KeyDirectory
from m3o.runtime.counters import CounterStore
from m3o.runtime.counters.admission import NO_CAP
from m3o.runtime.errors import NotFound
from m3o.services.balance.hot import debited_key, hot_key
from m3o.services.usage.counters import MONTHLY_TTL, monthly_key, tier_key, unit_key
from m3o.services.v1 import KeyRecord, hash_key, legacy_hash, rate_key
from m3o.services.v1.keys.format import new_key
from m3o.services.v1.keys.mirror import KeyMirror
from m3o.services.v1.proto import v1_pb2 as v1_pb
from m3o.services.v1.proto.fakes import FakeV1Client

PEPPER = b"pepper"
NOW = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


def _record(key: str) -> KeyRecord:
    return KeyRecord(
        id="key-1",
        hash=hash_key(key, PEPPER),
        scopes=("*",),
        owner="project-1",
        billing_account="customer-1",
    )


async def test_malformed_key_is_unknown_without_any_lookup(counters: CounterStore) -> None:
    v1 = FakeV1Client()
    directory = V1KeyDirectory(counters, v1, PEPPER)
    assert await directory.find("m3o_not-a-real-key") is None
    assert v1.resolve_key.call_count == 0


async def test_mirrored_record_is_read_from_the_counter_store(counters: CounterStore) -> None:
    key = new_key()
    await KeyMirror(counters).put(_record(key))
    v1 = FakeV1Client()
    found = await V1KeyDirectory(counters, v1, PEPPER).find(key)
    assert found == _record(key)
    assert v1.resolve_key.call_count == 0


async def test_record_missing_from_the_mirror_is_resolved_by_the_v1_service(
    counters: CounterStore,
) -> None:
    key = new_key()
    v1 = FakeV1Client()
    v1.resolve_key.returns(v1_pb.ResolveKeyResponse(key=_record(key).to_proto()))
    found = await V1KeyDirectory(counters, v1, PEPPER).find(key)
    assert found == _record(key)
    assert v1.resolve_key.args_for_call(0).hash == hash_key(key, PEPPER)


async def test_key_the_v1_service_does_not_know_is_unknown(counters: CounterStore) -> None:
    v1 = FakeV1Client()
    v1.resolve_key.raises(NotFound("v1.resolvekey", "Not found"))
    assert await V1KeyDirectory(counters, v1, PEPPER).find(new_key()) is None


def _m3o_key() -> str:
    return base64.b64encode(str(uuid.uuid4()).encode()).decode()


def _legacy_record(key: str) -> KeyRecord:
    return dataclasses.replace(_record(key), hash=legacy_hash(key), legacy=True)


async def test_an_imported_m3o_key_is_found_by_its_plain_sha256(counters: CounterStore) -> None:
    mirrored, resolved = _m3o_key(), _m3o_key()
    await KeyMirror(counters).put(_legacy_record(mirrored))
    v1 = FakeV1Client()
    v1.resolve_key.returns(v1_pb.ResolveKeyResponse(key=_legacy_record(resolved).to_proto()))
    directory = V1KeyDirectory(counters, v1, PEPPER)
    assert await directory.find(mirrored) == _legacy_record(mirrored)
    assert await directory.find(resolved) == _legacy_record(resolved)
    assert [call.hash for call in v1.resolve_key.calls] == [legacy_hash(resolved)]


async def test_a_hash_answers_only_for_a_key_of_its_own_kind(counters: CounterStore) -> None:
    # A record of our kind found under an M3O key's SHA-256 (or the other way round) is
    # not that key's.
    m3o_key, our_key = _m3o_key(), new_key()
    await KeyMirror(counters).put(dataclasses.replace(_record(m3o_key), hash=legacy_hash(m3o_key)))
    await KeyMirror(counters).put(dataclasses.replace(_record(our_key), legacy=True))
    directory = V1KeyDirectory(counters, FakeV1Client(), PEPPER)
    assert await directory.find(m3o_key) is None
    assert await directory.find(our_key) is None


async def test_a_string_of_neither_shape_is_unknown_without_any_lookup(
    counters: CounterStore,
) -> None:
    v1 = FakeV1Client()
    directory = V1KeyDirectory(counters, v1, PEPPER)
    not_a_uuid = base64.b64encode(b"x" * 36).decode()
    for presented in (not_a_uuid, _m3o_key()[:-4], _m3o_key().upper()):
        assert await directory.find(presented) is None
    assert v1.resolve_key.call_count == 0


async def test_tier_is_the_mirrored_value_or_free(counters: CounterStore) -> None:
    quotas = PlatformQuotas(counters, config_with())
    assert await quotas.tier("c1") == "free"
    await counters.set_value(tier_key("c1"), "pro")
    assert await quotas.tier("c1") == "pro"


def test_admission_request_uses_the_owners_names(counters: CounterStore) -> None:
    config = config_with(
        {
            "v1": {"rate-limits": {"free": 7, "pro": 70}},
            "usage": {
                "quotas": {"free": 11, "pro": 111},
                "usage_caps": {"pro": {"db$Db_Create": 5}},
            },
        }
    )
    quotas = PlatformQuotas(counters, config)
    call = PlannedCall("p1", "c1", "db", "Db.Create", price=3, endpoint_quota=2)
    request = quotas.request(call, "pro", NOW)
    endpoint = monthly_key("p1", "db$Db.Create", NOW)
    assert request.rate_key == rate_key("p1")
    assert request.rate_limit == 70
    assert (request.cap, request.cap_key) == (5, endpoint)
    assert (request.price, request.endpoint_quota) == (3, 2)
    assert (request.free_key, request.free_quota) == (monthly_key("p1", "totalfree", NOW), 111)
    assert request.endpoint_key == endpoint
    assert request.total_key == monthly_key("p1", "total", NOW)
    assert (request.balance_key, request.debited_key) == (hot_key("c1"), debited_key("c1"))
    assert request.monthly_ttl == MONTHLY_TTL
    unknown_tier = quotas.request(call, "platinum", NOW)
    assert (unknown_tier.rate_limit, unknown_tier.cap, unknown_tier.free_quota) == (7, NO_CAP, 11)


def test_a_reported_cap_compares_with_the_stored_units_unless_it_is_zero(
    counters: CounterStore,
) -> None:
    caps = {"free": {"db$Db_Create": 100, "db$Db_Drop": 0}}
    quotas = PlatformQuotas(counters, config_with({"usage": {"usage_caps": caps}}))

    def planned(endpoint: str, reports_units: bool) -> PlannedCall:
        return PlannedCall("project-1", "customer-1", "db", endpoint, 0, 0, reports_units)

    reported = quotas.request(planned("Db.Create", True), "free", NOW)
    assert (reported.cap, reported.cap_key, reported.cap_reported) == (
        100,
        unit_key("project-1", "db$Db.Create"),
        True,
    )
    counted = quotas.request(planned("Db.Create", False), "free", NOW)
    assert (counted.cap_key, counted.cap_reported) == (counted.endpoint_key, False)
    closed = quotas.request(planned("Db.Drop", True), "free", NOW)
    assert (closed.cap, closed.cap_reported) == (0, False)


async def test_reported_units_are_stored_for_admission(counters: CounterStore) -> None:
    quotas = PlatformQuotas(counters, config_with())
    await quotas.store_units(unit_key("project-1", "db$Db.Create"), 12)
    assert await counters.get(unit_key("project-1", "db$Db.Create")) == 12
