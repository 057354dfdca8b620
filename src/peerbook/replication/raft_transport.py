"""pysyncobj's transport, replaced: Raft messages as authenticated JSON over Grenache RPC.

The library's own TCP transport unpickles whatever arrives (research note on the Raft library,
section 4). This one carries the same messages with `peerbook.replication.codec` inside
Grenache RPC requests (``[rid, key, payload]`` over WebSocket, `peerbook.grenache.ws`), each
batch signed with HMAC-SHA256 under the cluster secret and refused unparsed if the signature
is wrong or the batch replays an old one.

Why WebSocket and not HTTP: a commit takes a request and its reply between the leader and
each follower; over one long-lived WebSocket a request and its reply cost about 190 us of CPU
on this machine, over pooled HTTP 410-520 us (both ends in one process,
`benchmarks/replication.py` for what it does to commits). The link to each member
behaves as the library's TCP connection would: a request without a reply drops it, and the
next request opens a new one.

Theory of operation: the library is ticked on the event loop's thread (`RaftLog`), so the
library, this transport and the RPC handlers never run at the same time. `send` (called by
the library) encodes the message and puts it in the destination's outbox; one sender task
per peer posts its outbox in order (several messages per request), which keeps per-peer
delivery in order as Raft needs. What the library says to a member while handling that
member's batch (a follower's answer to ``append_entries``) goes back in the reply instead,
when nothing else to that member is queued or on its way (`_received`): a commit then takes
one request and its reply per follower instead of two of each, which took a sequential order
through three peers from 6.4-7.1 ms to 5.5 ms at p50 and the leader's CPU per order from
4.1-4.4 to 3.5 ms (an ad-hoc measurement, `docs/benchmarks.md`). An incoming batch is
checked, decoded and handed to the library at once, so that a follower answers an
``append_entries`` without waiting for its next tick (a tick is still requested, for what
the library does only there: committing, applying). A batch holding a snapshot chunk waits
in a queue for the tick instead, and so does whatever arrives behind it until then, in
order: installing a snapshot takes seconds at scale, longer than the sender waits for its
request's reply. Measured with three member processes (`benchmarks/replication.py`'s member
part, before and after alternated, two runs each, in two sittings): no difference shown. The
first sitting gave 5,767-6,647 orders/s applied on all before and 6,899-8,814 after, the
second 5,236-6,143 and 5,359-5,653; the sequential commit's p50 moved by less than the
spread (4.2-4.9 against 4.1-4.7 ms, then 5.5-6.6 against 5.9-6.0 ms). Connectivity is
synthesised: a peer is "connected" once a request to it succeeds and "disconnected" when one
fails; a disconnected peer is pinged until it answers. Messages to a disconnected peer are
dropped, as on a broken TCP connection.

Pre-vote (Raft thesis, section 9.6), which the library lacks: before a member stands for
election it asks the others whether they would vote for it, without anyone changing term
(`hold_election`, ``pre_vote`` and ``pre_vote_response`` messages, which never reach the
library). A member grants one only if it has not heard from a leader for the shortest
election timeout and the asker's log is at least as up to date as its own. A member that
lagged (a loop busy installing a snapshot, a restart catching up, a partition healing) would
otherwise bump the term, and every member that hears the higher term drops its leader: the
fourth soak saw five elections in seven seconds while a lagging follower kept standing,
stalling writes for up to 6 s. Held back, it hears the leader again and follows. Only the
library's election itself is safety; this only decides when to start one (a member whose
timer runs out in the middle of a long tick may still stand without asking, as before).
"""

import asyncio
import hashlib
import hmac
import logging
import os
import queue
from collections.abc import Callable
from typing import Any

from pysyncobj.monotonic import monotonic
from pysyncobj.node import Node
from pysyncobj.pipe_notifier import PipeNotifier
from pysyncobj.transport import Transport

from peerbook.errors import GrenacheError, RemoteProtocolError, RpcError
from peerbook.grenache import WsRpcClient, WsRpcServer
from peerbook.grenache.service import Handler
from peerbook.replication.codec import decode_message, encode_message
from peerbook.replication.overlap import Trimmed, tail_after_snapshot, trim_overlap
from peerbook.replication.snapshot_store import snapshot_end

__all__ = [
    "RAFT_MESSAGE_BYTES_MAX",
    "RAFT_SERVICE_KEY",
    "GrenacheRaftTransport",
    "RaftEndpoint",
    "member_address",
    "member_id",
    "member_peer",
    "raft_server",
]

_log = logging.getLogger(__name__)

RAFT_SERVICE_KEY = "peerbook:raft"
RAFT_MESSAGE_BYTES_MAX = 16 << 20
"""Message size limit of a member's Raft RPC server (a `WsRpcServer`): log entries are up to
1 MiB each, so Raft traffic runs on its own server with this limit, apart from the 64 KiB
client API."""
_PRE_VOTE_GUARD_S = 0.05
"""An election timer this close to running out is held back for a pre-vote (the library
checks it during the tick that follows)."""
RAFT_HEARTBEAT_S = 5.0
"""A member's Raft server pings each socket this often and drops one whose client does not
answer within half of it (a client cut off by a partition; senders also post an empty batch
every second when they have nothing to say)."""


def raft_server(handler: Handler, *, host: str = "127.0.0.1", port: int = 0) -> WsRpcServer:
    """The WebSocket RPC server a member's Raft traffic arrives on; ``handler`` passes requests
    for `RAFT_SERVICE_KEY` to the member's `RaftEndpoint.receive`."""
    return WsRpcServer(
        handler, host=host, port=port, message_bytes_max=RAFT_MESSAGE_BYTES_MAX,
        heartbeat_s=RAFT_HEARTBEAT_S,
    )  # fmt: skip


_BATCH_BYTES_MAX = 4 << 20
_BATCH_MAX = 256
_RETRY_S = 0.2
_KEEPALIVE_S = 1.0
_REPLICA_BOOT = "r:"
"""A sender whose boot id starts with this is a non-voting replica (the boot id is signed)."""
_SEND_TIMEOUT_S = 2.0


def member_id(peer: str, address: str) -> str:
    """The Raft node id of a member: ``PEER@host:port``. The peer id travels with the address
    so that every member can name the others by peer id (``fetchStatus``) from the Raft
    configuration alone, and the address so that Raft traffic needs no grape lookup (a grape
    outage must not stop the cluster)."""
    return f"{peer}@{address}"


def member_address(node_id: str) -> str:
    """The ``host:port`` of a member's Raft server (a bare ``host:port`` id is its own)."""
    return node_id.rpartition("@")[2]


def member_peer(node_id: str) -> str:
    """The peer id of a member (the whole id if it carries none)."""
    return node_id.partition("@")[0] if "@" in node_id else node_id


def _mac(secret: bytes, sender: str, boot: str, counter: int, body: str) -> str:
    signed = f"{sender}\n{boot}\n{counter}\n{body}".encode()
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


Deliver = Callable[[str, bool, list[Any], bool], dict[str, Any] | None]
"""Hands a checked batch to the transport: (sender, from a replica, messages, whether the
sender takes answers in the reply); returns the signed batch of answers, if any."""


class RaftEndpoint:
    """The receiving half, shared by the RPC handler (loop thread) and the transport.

    The member's Raft RPC server (message limit `RAFT_MESSAGE_BYTES_MAX`) passes requests for
    `RAFT_SERVICE_KEY` to `receive`; the transport checks the answers that come back in the
    replies to its own requests with `accept_answers`.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._last_seen: dict[tuple[str, str], int] = {}
        self.deliver: Deliver | None = None

    def receive(self, payload: Any) -> dict[str, Any]:
        """Check and accept one batch; raises RpcError for anything not from a member. The
        reply carries the receiver's answers when the sender said it takes them."""
        sender, replica, messages = self._checked(payload)
        answers = None
        if self.deliver is not None:
            answers = self.deliver(sender, replica, messages, payload.get("answerable") is True)
        return {"ok": True} if answers is None else {"ok": True, "answers": answers}

    def accept_answers(self, member: str, payload: Any) -> tuple[bool, list[Any]] | None:
        """The answers ``member`` put in its reply to one of our requests: whether it is a
        replica, and the messages; None for a batch not signed by ``member`` or older than
        one already accepted from it. The second happens when a request of its own, sent
        after the answers, was handled first: the answers are then dropped, as a lost
        message, so that no member ever hears another's messages out of order."""
        if not isinstance(payload, dict) or payload.get("from") != member:
            # Checked first: a batch of another member's, taken as this one's answers,
            # would otherwise count as the latest heard from that other member.
            _log.warning("answers from raft peer %s are not signed as its own", member)
            return None
        try:
            _, replica, messages = self._checked(payload)
        except RpcError as exc:
            if "replayed" not in str(exc):
                _log.warning("answers from raft peer %s refused: %s", member, exc)
            return None
        return replica, messages

    def _checked(self, payload: Any) -> tuple[str, bool, list[Any]]:
        if not isinstance(payload, dict):
            raise RpcError("ERR_RAFT: payload is not an object")
        sender, boot, counter = payload.get("from"), payload.get("boot"), payload.get("n")
        body, mac = payload.get("messages"), payload.get("mac")
        if not (isinstance(sender, str) and isinstance(boot, str) and isinstance(body, str)):
            raise RpcError("ERR_RAFT: malformed batch")
        if type(counter) is not int or not isinstance(mac, str):
            raise RpcError("ERR_RAFT: malformed batch")
        expected = _mac(self._secret, sender, boot, counter, body)
        if not hmac.compare_digest(expected, mac):
            raise RpcError("ERR_RAFT: bad signature")
        if counter <= self._last_seen.get((sender, boot), -1):
            raise RpcError("ERR_RAFT: replayed batch")
        self._last_seen[sender, boot] = counter
        try:
            messages = decode_message(body)
        except RemoteProtocolError as exc:
            raise RpcError(f"ERR_RAFT: {exc}") from exc
        if not isinstance(messages, list):
            raise RpcError("ERR_RAFT: messages are not a list")
        return sender, boot.startswith(_REPLICA_BOOT), messages


class GrenacheRaftTransport(Transport):  # type: ignore[misc]
    """A pysyncobj `Transport` over Grenache WebSocket RPC. Built by pysyncobj with
    ``transportClass=functools.partial(GrenacheRaftTransport, loop=..., client=..., ...)``.

    Args:
        sync_obj, self_node, other_nodes: as pysyncobj passes them; node ids are `member_id`
            strings (or bare ``host:port``) naming each member's Raft RPC server.
        loop: the asyncio loop the RPC server and ``client`` run on.
        client: the WebSocket RPC client used to reach the other members (its connection to
            a member is dropped when a request to it fails).
        endpoint: the receiving half, wired to this member's RPC server.
        secret: the cluster secret that signs every batch.
        wake: asks for a library tick soon (called on the loop when something arrives).
        self_id: this member's node id (pysyncobj passes no node for a non-voting replica).

    Non-voting replicas: a replica's batches carry a boot id marked as a replica's. A member
    that hears from a replica it does not know adds it as one of the library's read-only
    nodes (the leader then replicates to it without counting it), and forgets it when it
    stops answering; every sender pings its peer when it has had nothing to send for a
    second, so a forgotten replica is found again.
    """

    def __init__(
        self,
        sync_obj: Any,
        self_node: Any,
        other_nodes: Any,
        *,
        loop: asyncio.AbstractEventLoop,
        client: WsRpcClient,
        endpoint: RaftEndpoint,
        secret: bytes,
        wake: Callable[[], None],
        self_id: str,
    ) -> None:
        super().__init__(sync_obj, self_node, other_nodes)
        self._sync_obj = sync_obj
        self._wake = wake
        self._loop = loop
        self._client = client
        self._secret = secret
        self._self_id = self_id
        self._boot = (_REPLICA_BOOT if self_node is None else "") + os.urandom(8).hex()
        self._replicas: set[str] = set()  # read-only nodes we know
        self._counter = 0
        self._nodes = {node.id: node for node in other_nodes}
        self._connected: set[str] = set()
        self._inbox: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()
        self._notifier = PipeNotifier(sync_obj._poller, self._drain_inbox)
        self._outboxes: dict[str, asyncio.Queue[str]] = {}
        self._claim: int | None = None  # see `_deliver`
        self._endpoint = endpoint
        self._answering: str | None = None  # see `_received`
        self._answers: list[str] = []
        self._posting: set[str] = set()  # the members a request of ours is on its way to
        self._ignoring_snapshot = False  # see `_install_snapshot`
        self._senders: dict[str, asyncio.Future[None]] = {}
        self._destroyed = False
        # When a leader's append_entries was last handled: from the start, so
        # that a member just (re)started refuses pre-votes until it could have heard one.
        self._leader_heard = monotonic()
        self._behind_leader_heard = 0.0  # when a leader of a lower term than ours was heard
        self._pre_vote_term: int | None = None  # the term asked about in the last pre-vote
        self._pre_votes: set[str] = set()  # who granted it
        self._pre_vote_asked = 0.0  # when
        endpoint.deliver = self._received
        for node_id in self._nodes:
            self._start_sender(node_id)

    # -- called by the library ----------------------------------------------------------

    def send(self, node: Any, message: Any) -> bool:
        if node.id not in self._connected:
            return False
        if message.get("type") == "next_node_idx":
            message = {**message, "term": self._sync_obj.raftCurrentTerm}
            if self._claim is not None:
                message["next_node_idx"] = min(message["next_node_idx"], self._claim + 1)
        text = encode_message(message)
        outbox = self._outboxes.get(node.id)
        if outbox is None:
            return False
        if node.id == self._answering and outbox.empty() and node.id not in self._posting:
            self._answers.append(text)  # goes back in the reply to its request
        else:
            outbox.put_nowait(text)
        return True

    def hold_election(self) -> None:
        """Called before each library tick: if this member's election timer is about to run
        out, hold it back and ask for pre-votes instead, unless a majority (this member
        included) granted one for the term it would stand in. Not for a replica, a leader,
        or a leadership transfer (the leader itself asked this member to stand)."""
        sync_obj = self._sync_obj
        now = monotonic()
        if (
            sync_obj._SyncObj__selfNode is None
            or sync_obj._isLeader()
            or sync_obj._SyncObj__transferInProgress
            or sync_obj._SyncObj__raftElectionDeadline > now + _PRE_VOTE_GUARD_S
            # A live leader of a lower term ignores this member (the library answers no
            # append_entries of a lower term, so that leader never learns the higher one):
            # only standing brings the others to this member's term.
            or now - self._behind_leader_heard < sync_obj._SyncObj__conf.raftMaxTimeout
        ):
            return
        term = sync_obj.raftCurrentTerm + 1
        if self._pre_vote_term == term and self._pre_vote_won():
            return  # granted: the library stands now
        self._pre_vote_term, self._pre_votes = term, set()
        self._pre_vote_asked = now
        if self._pre_vote_won():
            return  # alone: nobody to ask
        # Asked again sooner than a whole timeout: when the leader died, the first to ask
        # may be refused by members whose last heartbeat came a moment after its own.
        sync_obj._SyncObj__raftElectionDeadline = now + sync_obj._SyncObj__generateRaftTimeout() / 2
        ask = {
            "type": "pre_vote", "term": term,
            "last_log_index": sync_obj._SyncObj__getCurrentLogIndex(),
            "last_log_term": sync_obj._SyncObj__getCurrentLogTerm(),
        }  # fmt: skip
        for node in list(sync_obj._SyncObj__otherNodes):
            self.send(node, ask)

    def _pre_vote_won(self) -> bool:
        voters = len(self._sync_obj._SyncObj__otherNodes) + 1
        return len(self._pre_votes) + 1 > voters / 2

    def _answer_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        """Grant a pre-vote when no leader was heard from for the shortest election timeout
        and the asker's log is at least as up to date as this member's (as a vote would)."""
        sync_obj = self._sync_obj
        term, index, last_term = (message.get(k) for k in ("term", "last_log_index",
                                                            "last_log_term"))  # fmt: skip
        granted = (
            all(type(v) is int for v in (term, index, last_term))
            and sync_obj._SyncObj__selfNode is not None
            and not sync_obj._isLeader()
            and monotonic() - self._leader_heard >= sync_obj._SyncObj__conf.raftMinTimeout
            and term > sync_obj.raftCurrentTerm
            and (last_term, index)
            >= (sync_obj._SyncObj__getCurrentLogTerm(), sync_obj._SyncObj__getCurrentLogIndex())
        )
        self.send(node, {"type": "pre_vote_response", "term": term, "granted": granted})

    def _count_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        """Count a granted pre-vote; with a majority, stand at the next tick, unless a leader
        was heard from since asking (or the term moved on)."""
        sync_obj = self._sync_obj
        if (
            message.get("granted") is not True
            or message.get("term") != self._pre_vote_term
            or self._pre_vote_term != sync_obj.raftCurrentTerm + 1
            or self._leader_heard > self._pre_vote_asked
        ):
            return
        self._pre_votes.add(node.id)
        if self._pre_vote_won():
            sync_obj._SyncObj__raftElectionDeadline = 0

    def addNode(self, node: Any) -> None:  # noqa: N802 - the library's name
        self._replicas.discard(node.id)  # a replica that took a seat is a voter now
        self._nodes[node.id] = node
        self._loop.call_soon(self._start_sender, node.id)

    def dropNode(self, node: Any) -> None:  # noqa: N802 - the library's name
        self._nodes.pop(node.id, None)
        self._connected.discard(node.id)
        future = self._senders.pop(node.id, None)
        if future is not None:
            self._loop.call_soon(future.cancel)

    def destroy(self) -> None:
        self._destroyed = True
        for future in list(self._senders.values()):
            self._loop.call_soon(future.cancel)
        self._senders.clear()

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, node_id, message = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "replica":
                self._add_replica(node_id)
                continue
            node = self._nodes.get(node_id)
            if node is None:
                continue
            if kind == "down" and node_id in self._replicas:
                self._drop_replica(node)
                continue
            if kind == "up" and node_id not in self._connected:
                self._connected.add(node_id)
                self._onNodeConnected(node)
            elif kind == "down" and node_id in self._connected:
                self._connected.discard(node_id)
                self._onNodeDisconnected(node)
            elif kind == "message" and node_id in self._connected:
                self._deliver(node, message)

    def _add_replica(self, node_id: str) -> None:
        if node_id in self._nodes:
            return
        node = Node(node_id)
        self._nodes[node_id] = node
        self._replicas.add(node_id)
        self._connected.add(node_id)
        self._loop.call_soon(self._start_sender, node_id)
        self._onReadonlyNodeConnected(node)

    def _drop_replica(self, node: Any) -> None:
        self._replicas.discard(node.id)
        self.dropNode(node)
        self._onReadonlyNodeDisconnected(node)

    def _deliver(self, node: Any, message: Any) -> None:
        """Hand one message to the library. An ``append_entries`` goes through
        `_without_overlap` first; the library answers it at once, through `send`, which caps
        the answer at the rewrite's claim while ``_claim`` is set.

        The library's answer (``next_node_idx``) carries no term, so a leader would take an
        answer sent to it in an earlier term of its own, arriving late, as news about its
        log now: a follower "holding" entries it has since lost to another leader would count
        towards a commit. `send` stamps each answer with the term it was given in (a follower
        adopts the leader's term before answering), and an answer of any other term is
        dropped here, as Raft drops stale responses."""
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "next_node_idx" and message.get("term") != self._sync_obj.raftCurrentTerm:
            return
        if kind == "pre_vote":
            self._answer_pre_vote(node, message)
            return
        if kind == "pre_vote_response":
            self._count_pre_vote(node, message)
            return
        if kind != "append_entries":
            self._onMessageReceived(node, message)
            return
        if message.get("term", 0) < self._sync_obj.raftCurrentTerm:
            self._behind_leader_heard = monotonic()
        if "serialized" in message:
            self._install_snapshot(node, message)
        else:
            trimmed = self._without_overlap(message)
            self._claim = trimmed.claim
            try:
                self._onMessageReceived(node, trimmed.message)
            finally:
                self._claim = None
        self._rearm_election_timer(node)

    def _rearm_election_timer(self, node: Any) -> None:
        """Start the election timeout again once a message from the leader is handled (and
        note when: a member that heard its leader lately refuses pre-votes).

        The library starts it when it begins handling the message; a message that takes long
        to handle (installing a snapshot took 0.4-1.7 s in fault runs) then used up the whole
        timeout, and the follower stood for election as soon as it was done, deposing a live
        leader. Silence from the leader is what the timeout measures, not this member's own
        work. Not while a leadership transfer is pending, during which the library lets the
        timeout run out on purpose. Private attributes of pinned pysyncobj 0.3.17.
        """
        sync_obj = self._sync_obj
        if sync_obj._getLeader() is not node:
            return
        self._leader_heard = monotonic()
        self._pre_vote_term, self._pre_votes = None, set()  # a leader: what was granted lapses
        if not sync_obj._SyncObj__transferInProgress:
            sync_obj._SyncObj__raftElectionDeadline = (
                monotonic() + sync_obj._SyncObj__generateRaftTimeout()
            )

    def _install_snapshot(self, node: Any, message: dict[str, Any]) -> None:
        """Hand a snapshot message to the library, with what it lacks of Raft §7.

        The library adopts the leader's commit index with every snapshot message (each
        chunk), up to the end of its own log, although nothing checked that log against the
        leader's: it may end in a deposed leader's entries, which it would then apply. The
        message goes in with the commit index capped at this member's own. And after the
        library installed a snapshot (it clears the whole log), the entries of the old log
        after the snapshot's last entry are put back with the commit index they had, if that
        entry was held with the same term (`peerbook.replication.overlap.tail_after_snapshot`).
        A snapshot that ends before this member's log starts (its own snapshot is newer) is
        ignored, as Raft says: the library would install it and go back in time, losing the
        entries after it. Its chunks reach the library without their data, so that they still
        count as the leader's messages. Reads and writes the library's private log and commit
        index: pinned pysyncobj 0.3.17.
        """
        sync_obj = self._sync_obj
        log = sync_obj._SyncObj__raftLog
        committed = sync_obj.raftCommitIndex
        chunk = message["serialized"]
        parts = chunk if isinstance(chunk, list | tuple) and len(chunk) == 3 else (b"", 0, 0)
        if parts[1] and isinstance(parts[0], bytes):  # a first chunk: its file's header
            end = snapshot_end(parts[0])
            self._ignoring_snapshot = end is not None and len(log) > 0 and end[0] < log[0][1]
        capped = {**message, "commit_index": min(message["commit_index"], committed)}
        if self._ignoring_snapshot:
            self._ignoring_snapshot = not parts[2]
            self._onMessageReceived(node, {**capped, "serialized": None})
            return
        before = [log[i] for i in range(len(log))] if parts[2] and len(log) else []
        self._onMessageReceived(node, capped)
        if not before or log[len(log) - 1] == before[-1]:
            return  # nothing installed, or nothing after it
        snapshot_last = log[len(log) - 1]
        kept = tail_after_snapshot(before, snapshot_last)
        for entry in kept:
            log.add(*entry)
            change = sync_obj._SyncObj__parseChangeClusterRequest(entry[0])
            if change is not None:  # membership changes take effect once in the log
                sync_obj._SyncObj__doChangeCluster(change)
        # Everything in the snapshot is committed; after it, what was committed here before.
        restored = max(snapshot_last[1], min(committed, log[len(log) - 1][1]))
        if restored > sync_obj.raftCommitIndex:
            sync_obj._SyncObj__raftCommitIndex = restored
            log.setRaftCommitIndex(restored)
        if kept:
            _log.info(
                "kept %d log entries after the snapshot installed at %d (commit index %d)",
                len(kept), snapshot_last[1], sync_obj.raftCommitIndex,
            )  # fmt: skip

    def _without_overlap(self, message: dict[str, Any]) -> Trimmed:
        """Apply Raft's §5.3 rule the library gets wrong (`peerbook.replication.overlap`).
        Reads the library's private log accessors: pinned pysyncobj 0.3.17."""
        if "prevLogIdx" not in message or "transmission" in message:
            return Trimmed(message)
        log = self._sync_obj._SyncObj__raftLog
        if not len(log):
            return Trimmed(message)
        first = log[0][1]

        def entry_at(index: int) -> Any:
            position = index - first
            return log[position] if 0 <= position < len(log) else None

        return trim_overlap(message, entry_at, log[-1][1], self._sync_obj.raftCommitIndex)

    # -- called on the loop ----------------------------------------------------------------

    def _notify(self, kind: str, node_id: str) -> None:
        self._hand_over([(kind, node_id, None)], at_once=True)

    def _received(
        self, sender: str, replica: bool, messages: list[Any], answerable: bool = False
    ) -> dict[str, Any] | None:
        """Hand over a batch from ``sender``; with ``answerable``, return what the library
        said to it meanwhile as a signed batch, for the reply to carry.

        A follower answers each ``append_entries`` as it handles it; in the reply, the
        answer reaches the leader without a request of its own (the leader's sender is
        waiting for that reply anyway), which halves the messages of a commit. Only when
        nothing of ours to that member is queued or on its way: the answers then follow
        everything sent to it before, and `RaftEndpoint.accept_answers` drops them should a
        later request of ours overtake them."""
        items = [("replica", sender, None)] if replica else []  # registered, if new
        items.append(("up", sender, None))  # a member that can reach us is alive
        items.extend(("message", sender, message) for message in messages)
        snapshot = any(
            isinstance(message, dict) and "serialized" in message for message in messages
        )
        if not answerable:
            self._hand_over(items, at_once=not snapshot)
            return None
        self._answering = sender
        try:
            self._hand_over(items, at_once=not snapshot)
        finally:
            # Taken out whatever happened, so that nothing meant for this member waits here
            # for the next reply, which may be to another.
            answers, self._answers, self._answering = self._answers, [], None
        return self._batch(answers) if answers else None

    def _hand_over(self, items: list[tuple[str, str, Any]], at_once: bool) -> None:
        """Give the library what arrived: now, or (a snapshot chunk, anything behind one
        still waiting, anything before the library's first tick) at its next tick, in order
        either way."""
        if self._destroyed:
            return
        inbox = self._inbox
        # Not before the library's first tick, which loads the snapshot on disk (and may
        # clear the log a message would be checked against).
        at_once = at_once and inbox.empty() and not self._sync_obj._SyncObj__needLoadDumpFile
        for item in items:
            inbox.put(item)
        if not at_once:
            self._notifier.notify()
        else:
            try:
                self._drain_inbox()
            except Exception:
                # As a failing tick does: log and carry on; what is left waits for the tick.
                _log.exception("Raft message handling failed")
                self._notifier.notify()
        self._wake()

    def _start_sender(self, node_id: str) -> None:
        if node_id not in self._senders:
            self._outboxes[node_id] = asyncio.Queue()
            self._senders[node_id] = asyncio.ensure_future(self._sender(node_id))

    async def _sender(self, node_id: str) -> None:
        outbox = self._outboxes[node_id]
        up = False
        last_error = ""
        while True:
            batch: list[str] = []
            if up:
                try:
                    async with asyncio.timeout(_KEEPALIVE_S):
                        batch.append(await outbox.get())
                except TimeoutError:
                    pass  # nothing to say for a while: an empty batch, as a keepalive
                size = len(batch[0]) if batch else 0
                while not outbox.empty() and len(batch) < _BATCH_MAX and size < _BATCH_BYTES_MAX:
                    batch.append(outbox.get_nowait())
                    size += len(batch[-1])
            try:
                await self._post(node_id, batch)
            except GrenacheError as exc:
                if not isinstance(exc, RpcError):  # no answer at all: the link is suspect
                    self._client.disconnect(member_address(node_id))
                if up or str(exc) != last_error:
                    _log.info("raft peer %s unreachable: %s", node_id, exc)
                last_error = str(exc)
                if up:
                    self._notify("down", node_id)
                up = False
                while not outbox.empty():  # like a broken connection: these are lost
                    outbox.get_nowait()
                await asyncio.sleep(_RETRY_S)
                continue
            if not up:
                up, last_error = True, ""
                self._notify("up", node_id)

    async def _post(self, node_id: str, batch: list[str]) -> None:
        payload = {**self._batch(batch), "answerable": True}
        self._posting.add(node_id)
        try:
            reply = await self._client.send(
                member_address(node_id), RAFT_SERVICE_KEY, payload, timeout_s=_SEND_TIMEOUT_S
            )
        finally:
            self._posting.discard(node_id)
        if isinstance(reply, dict) and "answers" in reply and not self._destroyed:
            answers = self._endpoint.accept_answers(node_id, reply["answers"])
            if answers is not None:
                self._received(node_id, *answers)

    def _batch(self, messages: list[str]) -> dict[str, Any]:
        """Encoded ``messages`` signed as this member's next batch."""
        body = "[" + ",".join(messages) + "]"
        self._counter += 1
        return {
            "from": self._self_id,
            "boot": self._boot,
            "n": self._counter,
            "messages": body,
            "mac": _mac(self._secret, self._self_id, self._boot, self._counter, body),
        }
