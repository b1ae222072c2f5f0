"""Fixtures of the mailchimp tests: the local Mailchimp fake, served on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.mailchimp.support import MailchimpFake
from support.http_fakes import served


@pytest.fixture
def mailchimp() -> Iterator[tuple[MailchimpFake, str]]:
    fake = MailchimpFake()
    with served(fake.app()) as url:
        yield fake, url
