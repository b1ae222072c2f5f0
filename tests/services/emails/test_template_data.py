"""Send reads template data in every shape callers send it: JSON text (ours), base64 of
it (the reference's JSON shape), and refuses anything else with a detail saying why."""

from __future__ import annotations

import base64

import pytest

from m3o.runtime.errors import BadRequest
from m3o.services.emails.proto import emails_pb2 as pb
from m3o.services.emails.template_data import MAX_TEMPLATE_DATA
from services.emails.support import CODE, RecordingTransport, World, call

RECOVERY = b'{"token": "tok-1", "reset_url": "https://r.example/?a=1&b=2"}'


def _recovery(template_data: str) -> pb.SendRequest:
    return pb.SendRequest(to="ann@example.com", template_id="recovery", template_data=template_data)


@pytest.mark.parametrize(
    "template_data",
    [
        RECOVERY.decode(),
        f"  {RECOVERY.decode()}\n",
        base64.b64encode(RECOVERY).decode(),
        base64.b64encode(RECOVERY).decode().rstrip("="),
        base64.urlsafe_b64encode(RECOVERY).decode(),
        base64.b64encode(b"\n " + RECOVERY).decode(),
    ],
    ids=["json", "json-padded-with-space", "base64", "base64-unpadded", "base64-url", "base64-ws"],
)
async def test_template_data_is_json_text_or_its_base64(
    world: World, transport: RecordingTransport, template_data: str
) -> None:
    await world.send(_recovery(template_data))

    [sent] = transport.sent
    assert "tok-1" in sent.text
    assert "https://r.example/?a=1&b=2" in sent.text


async def test_base64_data_reaches_the_verification_template(
    world: World, transport: RecordingTransport
) -> None:
    data = base64.b64encode(f'{{"code": "{CODE}"}}'.encode()).decode()

    await world.send(
        pb.SendRequest(to="ann@example.com", template_id="verification", template_data=data)
    )

    [sent] = transport.sent
    assert CODE in sent.text


@pytest.mark.parametrize(
    ("template_data", "detail"),
    [
        ("hello there", "Template data must be a JSON object, or its JSON text in base64: "
         "this is neither"),
        ("abcde", "Template data must be a JSON object, or its JSON text in base64: "
         "this is neither"),
        ("eyJh*", "Template data must be a JSON object, or its JSON text in base64: "
         "this is neither"),
        (base64.b64encode(b"[1, 2]").decode(),
         "Template data in base64 must decode to a JSON object"),
        (base64.b64encode(b"not json").decode(),
         "Template data in base64 must decode to a JSON object"),
        (base64.b64encode(b"\xff\xfe{}").decode(),
         "Template data in base64 must decode to a JSON object"),
        ("[1, 2]", "Template data must be a JSON object"),
        ('{"code": ', "Template data must be a JSON object"),
    ],
    ids=[
        "words",
        "base64-bad-length",
        "base64-bad-character",
        "base64-of-an-array",
        "base64-of-text",
        "base64-of-binary",
        "json-array",
        "broken-json",
    ],
)  # fmt: skip
async def test_template_data_neither_json_nor_base64_of_an_object_is_refused(
    offline: World, transport: RecordingTransport, template_data: str, detail: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        await offline.handler.send(_recovery(template_data), call("Send"))

    assert raised.value == BadRequest("emails.send.templatedata", detail)
    assert transport.attempts == 0


@pytest.mark.parametrize("encode", [False, True], ids=["json", "base64"])
async def test_template_data_over_the_limit_is_refused(offline: World, encode: bool) -> None:
    text = '{"token": "' + "x" * MAX_TEMPLATE_DATA + '"}'
    raw = base64.b64encode(text.encode()).decode() if encode else text

    with pytest.raises(BadRequest) as raised:
        await offline.handler.send(_recovery(raw), call("Send"))

    assert raised.value == BadRequest("emails.send.templatedata", "Template data is too large")
