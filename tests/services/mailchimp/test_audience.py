"""The Mailchimp API as the fake receives it: the upsert, the permanent delete, basic auth
with the key, retries on 5xx only, and the deadline of each call."""

from __future__ import annotations

import hashlib

import pytest
from structlog.testing import capture_logs

from m3o.runtime.config import build_config
from m3o.runtime.outbound import OutboundError
from m3o.services.mailchimp.audience import (
    LocalAudience,
    MailchimpAudience,
    api_url_for,
    audience_from,
    subscriber_hash,
)
from services.mailchimp.support import API_KEY, LIST_ID, MailchimpFake, Received, audience

ANN_HASH = hashlib.md5(b"ann@example.com").hexdigest()


async def test_add_puts_a_subscribed_member_tagged_customer(
    mailchimp: tuple[MailchimpFake, str],
) -> None:
    fake, url = mailchimp
    subject = audience(url)
    try:
        await subject.add("ann@example.com")
    finally:
        await subject.close()

    assert fake.received == [
        Received(
            "PUT",
            f"/3.0/lists/{LIST_ID}/members/{ANN_HASH}",
            {
                "email_address": "ann@example.com",
                "status_if_new": "subscribed",
                "status": "subscribed",
                "tags": ["customer"],
            },
            ("m3o", API_KEY),
        )
    ]


async def test_delete_is_a_permanent_delete_and_a_missing_member_counts_as_done(
    mailchimp: tuple[MailchimpFake, str],
) -> None:
    fake, url = mailchimp
    fake.answers = [404]
    subject = audience(url)
    try:
        await subject.delete("ann@example.com")
        await subject.delete("ann@example.com")
    finally:
        await subject.close()

    path = f"/3.0/lists/{LIST_ID}/members/{ANN_HASH}/actions/delete-permanent"
    assert fake.received == [Received("POST", path, None, ("m3o", API_KEY))] * 2


def test_the_member_id_is_the_md5_of_the_lower_cased_email() -> None:
    assert subscriber_hash("Ann@Example.COM") == ANN_HASH


async def test_a_503_is_tried_again(mailchimp: tuple[MailchimpFake, str]) -> None:
    fake, url = mailchimp
    fake.answers = [503, 503]
    subject = audience(url)
    try:
        await subject.add("ann@example.com")
    finally:
        await subject.close()

    assert len(fake.received) == 3
    assert len({r.path for r in fake.received}) == 1


async def test_a_400_is_not_tried_again(mailchimp: tuple[MailchimpFake, str]) -> None:
    fake, url = mailchimp
    fake.answers = [400]
    subject = audience(url)
    try:
        with pytest.raises(OutboundError) as failure:
            await subject.add("ann@example.com")
    finally:
        await subject.close()

    assert failure.value.status == 400
    assert not failure.value.transient
    assert len(fake.received) == 1
    assert API_KEY not in str(failure.value)


async def test_a_delete_refused_other_than_404_fails(mailchimp: tuple[MailchimpFake, str]) -> None:
    fake, url = mailchimp
    fake.answers = [403]
    subject = audience(url)
    try:
        with pytest.raises(OutboundError):
            await subject.delete("ann@example.com")
    finally:
        await subject.close()


async def test_a_slow_server_hits_the_deadline(mailchimp: tuple[MailchimpFake, str]) -> None:
    fake, url = mailchimp
    fake.delay = 2.0
    subject = audience(url, timeout=0.2)
    try:
        with pytest.raises(OutboundError) as failure:
            await subject.add("ann@example.com")
    finally:
        await subject.close()

    assert failure.value.transient
    assert "did not answer in time" in str(failure.value)


def test_the_data_centre_comes_from_the_key() -> None:
    assert api_url_for("abc-us8") == "https://us8.api.mailchimp.com"
    assert api_url_for("abc-us21") == "https://us21.api.mailchimp.com"
    assert api_url_for("abc") == ""


def test_mailchimp_is_used_only_when_enabled_and_configured() -> None:
    complete = {"enabled": True, "api_key": "k-us3", "main_list_id": "l"}
    assert isinstance(audience_from(build_config({"mailchimp": complete}, {})), MailchimpAudience)
    for section in (
        {**complete, "enabled": False},
        {**complete, "api_key": ""},
        {**complete, "api_key": "no-data-centre"},
        {**complete, "main_list_id": ""},
        {},
    ):
        chosen = audience_from(build_config({"mailchimp": section}, {}))
        assert isinstance(chosen, LocalAudience), section


async def test_the_local_sink_records_and_logs_what_would_have_been_sent() -> None:
    sink = LocalAudience()
    with capture_logs() as logs:
        await sink.add("ann@example.com")
        await sink.delete("bob@example.com")
    assert (sink.added, sink.deleted) == (["ann@example.com"], ["bob@example.com"])
    assert [(entry["event"], entry["email"]) for entry in logs] == [
        ("mailchimp.local_add", "a***@example.com"),
        ("mailchimp.local_delete", "b***@example.com"),
    ]
