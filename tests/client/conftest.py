"""The fake public API every client test talks to over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from client.fake_platform import FakePlatform, serve


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with serve(FakePlatform()) as served:
        yield served
