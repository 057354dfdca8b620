"""Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable.

``dev`` (the default) is quick and random, ``ci`` is derandomized so that a red build can be
rerun to the same failure, ``nightly`` runs many more examples. No profile has a deadline: a
slow shared CI machine must not turn timing noise into failures.
"""

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("nightly", max_examples=2_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
