"""Repository-wide pytest options."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.embedded_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/compiler/golden/*/expected.* from the current compiler (review the diff!)",
    )
