"""Fixtures of the mixpanel tests: the local Mixpanel fake, served on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.mixpanel.support import MixpanelFake
from support.http_fakes import served


@pytest.fixture
def mixpanel() -> Iterator[tuple[MixpanelFake, str]]:
    fake = MixpanelFake()
    with served(fake.app()) as url:
        yield fake, url
