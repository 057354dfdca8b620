"""The exception tree of peerbook, split by who is to blame.

::

    PeerbookError
      InvalidCommand          a caller built a malformed value (local fault; fix your code)
      SnapshotError           a snapshot's bytes are not a valid engine snapshot
      EngineInvariantError    the engine's state broke an invariant: a bug; stop the node

Business outcomes (an unknown order, an off-tick price, a post-only order that would cross) are
never raised: the engine returns them as `OrderRejected` events, and the request decoder returns
them as `RequestError` values, each carrying one of the contract's error classes.
"""

__all__ = ["EngineInvariantError", "InvalidCommand", "PeerbookError", "SnapshotError"]


class PeerbookError(Exception):
    """Base class of every exception peerbook raises on purpose."""


class InvalidCommand(PeerbookError):
    """A caller built a value the API does not allow (for example a bad market definition)."""


class SnapshotError(PeerbookError):
    """Bytes offered as an engine snapshot are malformed, of an unknown version or inconsistent."""


class EngineInvariantError(PeerbookError):
    """The engine's state broke one of its invariants. This is a bug: the replica must stop."""
