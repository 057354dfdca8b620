"""Test support that is library code: the naive reference engine the real engine is checked
against (fakes live here rather than under ``tests/`` so that every suite can share them)."""

from peerbook.testing.reference import ReferenceEngine

__all__ = ["ReferenceEngine"]
