"""The compiled parts of peerbook: the matching engine's hot path (`peerbook.engine._native`)
and the reading of valid log entries into engine commands (`peerbook.wire._native`).

Optional: where it cannot be built (no C compiler), peerbook installs without it and the
engine runs in Python alone, with the same results (`peerbook.engine.COMPILED` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "peerbook.engine._native",
            sources=["src/peerbook/engine/_native.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        ),
        Extension(
            "peerbook.wire._native",
            sources=["src/peerbook/wire/_native.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        ),
    ]
)
