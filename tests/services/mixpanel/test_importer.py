"""The import API as the fake receives it: one POST per batch, basic auth with the service
account, strict mode and the project; retries on 5xx only; the deadline of each call."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from m3o.runtime.config import build_config
from m3o.runtime.outbound import OutboundError
from m3o.services.mixpanel.importer import LocalImporter, MixpanelImporter, importer_from
from services.mixpanel.support import PROJECT, SECRET, USER, MixpanelFake, Received, importer

EVENTS = [
    {"event": "customers_EventTypeSignup", "properties": {"distinct_id": "ann", "$insert_id": "a"}},
    {"event": "requests_EventTypeRequest", "properties": {"distinct_id": "p1", "$insert_id": "b"}},
]


async def test_a_batch_is_one_import_call(mixpanel: tuple[MixpanelFake, str]) -> None:
    fake, url = mixpanel
    subject = importer(url)
    try:
        await subject.send(EVENTS)
    finally:
        await subject.close()

    assert fake.received == [
        Received(
            "/import",
            {"strict": "1", "project_id": PROJECT},
            (USER, SECRET),
            "application/json",
            EVENTS,
        )
    ]


async def test_a_503_is_tried_again_with_the_same_batch(mixpanel: tuple[MixpanelFake, str]) -> None:
    fake, url = mixpanel
    fake.answers = [503]
    subject = importer(url)
    try:
        await subject.send(EVENTS)
    finally:
        await subject.close()

    assert [r.events for r in fake.received] == [EVENTS, EVENTS]


async def test_a_400_is_not_tried_again(mixpanel: tuple[MixpanelFake, str]) -> None:
    fake, url = mixpanel
    fake.answers = [400]
    subject = importer(url)
    try:
        with pytest.raises(OutboundError) as failure:
            await subject.send(EVENTS)
    finally:
        await subject.close()

    assert len(fake.received) == 1
    assert failure.value.status == 400
    assert not failure.value.transient
    assert SECRET not in str(failure.value)


async def test_a_slow_server_hits_the_deadline(mixpanel: tuple[MixpanelFake, str]) -> None:
    fake, url = mixpanel
    fake.delay = 2.0
    subject = importer(url, timeout=0.2)
    try:
        with pytest.raises(OutboundError) as failure:
            await subject.send(EVENTS)
    finally:
        await subject.close()

    assert failure.value.transient
    assert "did not answer in time" in str(failure.value)


def test_mixpanel_is_used_only_when_enabled_and_configured() -> None:
    complete = {"enabled": True, "project": "1", "user": "u", "secret": "s"}
    chosen = importer_from(build_config({"mixpanel": complete}, {}))
    assert isinstance(chosen, MixpanelImporter)
    for section in (
        {**complete, "enabled": False},
        {**complete, "project": ""},
        {**complete, "user": ""},
        {**complete, "secret": ""},
        {},
    ):
        assert isinstance(importer_from(build_config({"mixpanel": section}, {})), LocalImporter)


async def test_the_local_sink_keeps_each_batch() -> None:
    sink = LocalImporter()
    with capture_logs() as logs:
        await sink.send(EVENTS)
        await sink.send(EVENTS[:1])
    assert list(sink.batches) == [EVENTS, EVENTS[:1]]
    assert [(entry["event"], entry["events"]) for entry in logs] == [
        ("mixpanel.local_batch", 2),
        ("mixpanel.local_batch", 1),
    ]
    assert logs[0]["names"] == {"customers_EventTypeSignup": 1, "requests_EventTypeRequest": 1}


async def test_the_local_sink_keeps_only_the_newest_batches() -> None:
    sink = LocalImporter(keep=3)
    for n in range(5):
        await sink.send(EVENTS[: 1 + n % 2])
    assert [len(batch) for batch in sink.batches] == [1, 2, 1]
