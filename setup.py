"""The compiled part of peerbook: the matching engine's hot path (`peerbook.engine._native`).

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
        )
    ]
)
