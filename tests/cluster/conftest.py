"""The fake API server holding the example cluster, started and stopped around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .apiserver import FakeApiServer
from .harness import shop_objects


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    srv = FakeApiServer(bookmark_interval=0.2).start()
    for obj in shop_objects():
        srv.apply(obj)
    yield srv
    srv.stop()
