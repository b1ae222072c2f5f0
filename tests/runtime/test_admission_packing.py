"""A batch's admissions packed from kept parts are byte for byte what redis-py sends for
the same keys and arguments."""

from __future__ import annotations

from datetime import timedelta

from m3o.runtime.counters.admission import AdmissionRequest, Hold
from m3o.runtime.counters.admission_redis import AdmissionPacker, admit_arguments
from m3o.runtime.counters.redis import _ms
from m3o.runtime.store.redis import redis_client
from runtime.counters_fixtures import call

SHA = "0123456789abcdef0123456789abcdef01234567"


def _prefixed(key: str) -> str:
    return "m3o:" + key


def _redis_py(requests: list[AdmissionRequest]) -> bytes:
    keys: list[str] = []
    arguments: list[int | str] = []
    for request in requests:
        call_keys, call_arguments = admit_arguments(request, _prefixed, _ms)
        keys += call_keys
        arguments += call_arguments
    connection = redis_client("redis://127.0.0.1:1/0", timeout=1).connection_pool.make_connection()
    return b"".join(connection.pack_command("EVALSHA", SHA, len(keys), *keys, *arguments))


def test_a_packed_batch_is_what_redis_py_sends() -> None:
    requests = [
        call(hold=Hold("v1:holds", "a.1")),
        call(hold=Hold("v1:holds", "a.2")),  # the same parts, another hold
        call(price=10, free_quota=0, cap=5, cap_reported=True, hold=Hold("other", "b.1")),
        call(rate_key="rāte ✓", monthly_ttl=timedelta(days=40), rate_window=timedelta(seconds=1)),
        call(endpoint_quota=3, hold=Hold("v1:holds", "é.3")),
    ]
    packer = AdmissionPacker(SHA, _prefixed, _ms)

    assert packer.pack(requests) == _redis_py(requests)
    assert packer.pack(requests[:1]) == _redis_py(requests[:1])
    assert packer.pack(requests[1:]) == _redis_py(requests[1:])  # from the kept parts
