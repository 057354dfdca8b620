"""Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable.

``dev`` (the default) is quick and random, ``ci`` is derandomized so that a red build can be
rerun to the same failure, ``nightly`` runs many more examples. No profile has a deadline: a
slow shared CI machine must not turn timing noise into failures.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from hypothesis import settings

from peerbook.testing.processes import stop_process

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("nightly", max_examples=2_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@contextlib.contextmanager
def grape_process(port: int = 0) -> Iterator[tuple["subprocess.Popen[str]", str]]:
    """A ``peerbook grape`` process on ``port`` (0: a free one) and its URL; stopped (by
    PID) on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "peerbook", "grape", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().strip()
    finally:
        stop_process(process)
