"""Registers the ``interop`` marker used by the Node.js interop tests."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interop: needs Node.js and the npm packages")
