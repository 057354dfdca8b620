"""The exception tree of peerbook, split by who is to blame.

::

    PeerbookError
      InvalidCommand          a caller built a malformed value (local fault; fix your code)
      SnapshotError           a snapshot's bytes are not a valid engine snapshot
      EngineInvariantError    the engine's state broke an invariant: a bug; stop the node
      ReplicationError        the log could not take an entry (no leader, no quorum): not applied
        UnknownOutcomeError   the entry may or may not have been applied (leader changed)
      GrenacheError           abstract: something went wrong talking Grenache
        GrapeError            the grape answered with an error (an error string, or non-2xx)
          LookupEmptyError    no peer is announced under that name
          AnnounceError       the grape did not store the announcement
        RpcError              the remote service answered the request with an error message
        RemoteProtocolError   a peer or grape sent bytes that are not Grenache
        TransportError        the network failed: refused, reset, closed before the reply
          ConnectFailedError  no connection could be opened: the request was never sent
          ClosedBeforeReplyError  the peer closed the connection before any reply
          RequestTimeoutError no reply within the call's timeout (the request may have run)

Business outcomes (an unknown order, an off-tick price, a post-only order that would cross) are
never raised: the engine returns them as `OrderRejected` events, and the request decoder returns
them as `RequestError` values, each carrying one of the contract's error classes.
"""

__all__ = [
    "AnnounceError",
    "ClosedBeforeReplyError",
    "ConnectFailedError",
    "EngineInvariantError",
    "GrapeError",
    "GrenacheError",
    "InvalidCommand",
    "LookupEmptyError",
    "PeerbookError",
    "RemoteProtocolError",
    "ReplicationError",
    "RequestTimeoutError",
    "RpcError",
    "SnapshotError",
    "TransportError",
    "UnknownOutcomeError",
]


class PeerbookError(Exception):
    """Base class of every exception peerbook raises on purpose."""


class InvalidCommand(PeerbookError):
    """A caller built a value the API does not allow (for example a bad market definition)."""


class SnapshotError(PeerbookError):
    """Bytes offered as an engine snapshot are malformed, of an unknown version or inconsistent."""


class EngineInvariantError(PeerbookError):
    """The engine's state broke one of its invariants. This is a bug: the replica must stop."""


class GrenacheError(PeerbookError):
    """Something went wrong talking Grenache; catch the subclasses to decide what to do."""


class GrapeError(GrenacheError):
    """The grape answered with an error: a JSON error string with status 200 (grape 1.0.0
    reports ``ERR_GRAPE_LOOKUP``, ``No nodes to query`` and the like that way) or a non-2xx
    status. ``status`` is the HTTP status; the message is the grape's own text."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.status = status


class LookupEmptyError(GrapeError):
    """No peer is announced under the name looked up."""


class AnnounceError(GrapeError):
    """The grape did not store the announcement (its reply was not a positive count)."""


class RpcError(GrenacheError):
    """The remote service handled the request and answered with this error message."""


class RemoteProtocolError(GrenacheError):
    """A peer or grape sent something that is not valid Grenache (bad JSON, wrong shape)."""


class TransportError(GrenacheError):
    """The network failed: connection refused or reset, or closed before the reply."""


class RequestTimeoutError(TransportError):
    """No reply came within the call's timeout. The request may still have been processed."""


class ConnectFailedError(TransportError):
    """No connection could be opened, or the server there is no Grenache service (HTTP 404
    or 405), so the request was certainly not processed: safe to send it to another peer."""


class ClosedBeforeReplyError(TransportError):
    """The peer closed the connection without sending any byte of a reply (typically a
    pooled keep-alive connection closed by the server just as the request went out)."""


class ReplicationError(PeerbookError):
    """The replicated log did not take the entry (no leader or no quorum, queue full): it was
    certainly not applied, so it is safe to retry."""


class UnknownOutcomeError(ReplicationError):
    """The entry may or may not have been applied (for example the leader changed before
    confirming it): retry with the same client order ids, which makes the retry harmless."""
