"""Each package's ``__all__`` is exactly its public names, so the surface changes on purpose."""

import importlib
from types import ModuleType

import pytest


@pytest.mark.parametrize(
    "module_name",
    [
        "peerbook",
        "peerbook.engine",
        "peerbook.wire",
        "peerbook.errors",
        "peerbook.testing",
        "peerbook.grenache",
    ],
)
def test_all_lists_exactly_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    public = {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, ModuleType)
    }
    assert set(module.__all__) == public
