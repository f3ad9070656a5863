"""The fake API server holding the example cluster, started and stopped around each test, and the
certificates of its HTTPS variant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pki import SERVER_EXT, make_ca, make_leaf

from .apiserver import FakeApiServer
from .harness import shop_objects


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    srv = FakeApiServer(bookmark_interval=0.2).start()
    for obj in shop_objects():
        srv.apply(obj)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster CA, the API server's certificate signed by it, and another CA (for refusals)."""
    d = tmp_path_factory.mktemp("apiserver-pki")
    make_ca(d, "cluster-ca")
    make_ca(d, "other-ca")
    make_leaf(d, "apiserver", "cluster-ca", SERVER_EXT)
    return d
