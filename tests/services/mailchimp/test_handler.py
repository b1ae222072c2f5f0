"""AddCustomer and DeleteCustomer: admins and services only, the email checked first, the
block list skipped, Mailchimp's failures answered with a generic error of the right kind."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from m3o.runtime.auth import Account
from m3o.runtime.errors import BadRequest, Forbidden, Internal, Unauthorized, Unavailable
from m3o.services.mailchimp.audience import LocalAudience
from m3o.services.mailchimp.handler import Membership
from m3o.services.mailchimp.proto import mailchimp_pb2 as pb
from services.mailchimp.support import (
    ADMIN,
    ANN,
    API_KEY,
    BOB,
    SERVICE,
    MailchimpFake,
    audience,
    call,
    handler,
)

_ADD = ("AddCustomer", "add_customer", pb.AddCustomerRequest)
_DELETE = ("DeleteCustomer", "delete_customer", pb.DeleteCustomerRequest)
ENDPOINTS = [_ADD, _DELETE]


async def _call(
    subject: object, endpoint: tuple[str, str, type], email: str, who: Account | None
) -> None:
    method, attribute, request = endpoint
    await getattr(subject, attribute)(request(email=email), call(method, who))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=["add", "delete"])
@pytest.mark.parametrize(
    ("who", "refusal"),
    [(ANN, Forbidden), (BOB, Forbidden), (None, Unauthorized)],
    ids=["customer", "other-customer", "anonymous"],
)
async def test_only_admins_and_services_may_call(
    endpoint: tuple[str, str, type], who: Account | None, refusal: type[Exception]
) -> None:
    sink = LocalAudience()
    subject = handler(Membership(audience=sink, block_list=[]))
    with pytest.raises(refusal):
        await _call(subject, endpoint, ANN_EMAIL, who)
    assert (sink.added, sink.deleted) == ([], [])


ANN_EMAIL = "ann@example.com"


@pytest.mark.parametrize("who", [ADMIN, SERVICE], ids=["admin", "service"])
async def test_admins_and_services_add_and_delete(who: Account) -> None:
    sink = LocalAudience()
    subject = handler(Membership(audience=sink, block_list=[]))
    await _call(subject, _ADD, " Ann@Example.com ", who)
    await _call(subject, _DELETE, ANN_EMAIL, who)
    assert (sink.added, sink.deleted) == ([ANN_EMAIL], [ANN_EMAIL])


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=["add", "delete"])
@pytest.mark.parametrize(
    ("email", "detail"),
    [
        ("", "Missing email"),
        ("   ", "Missing email"),
        ("not-an-email", "Invalid email"),
        ("a@b@example.com", "Invalid email"),
        ("ann@exämple.com", "Invalid email"),
    ],
)
async def test_bad_emails_are_refused(
    endpoint: tuple[str, str, type], email: str, detail: str
) -> None:
    sink = LocalAudience()
    subject = handler(Membership(audience=sink, block_list=[]))
    with pytest.raises(BadRequest) as refused:
        await _call(subject, endpoint, email, ADMIN)
    assert refused.value.detail.startswith(detail)
    assert refused.value.id == f"mailchimp.{endpoint[0].lower()}"
    assert (sink.added, sink.deleted) == ([], [])


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=["add", "delete"])
async def test_block_listed_emails_are_skipped_whatever_their_case(
    mailchimp: tuple[MailchimpFake, str], endpoint: tuple[str, str, type]
) -> None:
    fake, url = mailchimp
    real = audience(url)
    subject = handler(Membership(audience=real, block_list=["Blocked@Example.com", ""]))
    try:
        await _call(subject, endpoint, "BLOCKED@example.COM", ADMIN)
        await _call(subject, endpoint, ANN_EMAIL, ADMIN)
    finally:
        await real.close()
    assert len(fake.received) == 1
    assert fake.received[0].path.count("/members/") == 1
    assert "blocked" not in str(fake.received[0])


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=["add", "delete"])
@pytest.mark.parametrize(("answers", "kind"), [([503, 503, 503], Unavailable), ([400], Internal)])
async def test_mailchimp_failures_are_generic_errors(
    mailchimp: tuple[MailchimpFake, str],
    endpoint: tuple[str, str, type],
    answers: list[int],
    kind: type[Exception],
) -> None:
    fake, url = mailchimp
    fake.answers = list(answers)
    real = audience(url)
    subject = handler(Membership(audience=real, block_list=[]))
    try:
        with pytest.raises(kind) as failed:
            await _call(subject, endpoint, ANN_EMAIL, SERVICE)
    finally:
        await real.close()
    assert "scripted" not in str(failed.value)
    assert len(fake.received) == len(answers)


async def test_failures_are_logged_without_the_key_or_the_whole_email(
    mailchimp: tuple[MailchimpFake, str],
) -> None:
    fake, url = mailchimp
    fake.answers = [503, 503, 503, 400]
    real = audience(url)
    subject = handler(Membership(audience=real, block_list=[]))
    try:
        with capture_logs() as logs:
            for _ in range(2):
                with pytest.raises((Unavailable, Internal)):
                    await _call(subject, _ADD, ANN_EMAIL, ADMIN)
    finally:
        await real.close()
    failed = [entry for entry in logs if entry["event"] == "mailchimp.failed"]
    assert [entry["email"] for entry in failed] == ["a***@example.com"] * 2
    assert "503" in failed[0]["error"]
    assert API_KEY not in repr(logs)
    assert ANN_EMAIL not in repr(logs)
