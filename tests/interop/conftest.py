"""The ``interop`` marker and the Node grapes the interop tests share."""

from collections.abc import Iterator

import pytest

from tests.interop.node_harness import (
    ensure_node_modules,
    node_binary,
    node_grapes,
    unavailable_reason,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interop: needs Node.js and the npm packages")


@pytest.fixture(scope="module")
def grapes() -> Iterator[list[str]]:
    """Two real Node grapes (``--dpa 120000``), bootstrapped to each other."""
    if node_binary() is None or not ensure_node_modules():
        pytest.skip(unavailable_reason())
    with node_grapes(2) as urls:
        yield urls
