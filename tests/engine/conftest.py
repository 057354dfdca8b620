"""Every engine test runs twice: against `Engine` with its compiled hot path, and against the
engine in Python alone (what runs where the C module is not built). Module-scoped, so that
Hypothesis tests, which refuse function-scoped fixtures, run under both too."""

from collections.abc import Iterator

import pytest

from peerbook.engine.engine import COMPILED, Engine, PurePythonEngine


@pytest.fixture(
    scope="module",
    autouse=True,
    params=["compiled", "python"] if COMPILED else ["python"],
)
def engine_implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which hot path `Engine` takes in this module's run."""
    compiled = Engine.__dict__["apply"]  # the descriptor itself: Engine.apply unwraps it
    if request.param == "python":
        Engine.apply = PurePythonEngine.apply  # type: ignore[method-assign]
    try:
        yield str(request.param)
    finally:
        Engine.apply = compiled  # type: ignore[method-assign]
