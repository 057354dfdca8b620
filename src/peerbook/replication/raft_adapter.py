"""RaftLog: the replicated log on pysyncobj, the one module that drives the Raft library.

Each member runs a `SyncObj` whose only replicated method applies one entry to this member's
`OrderStateMachine`; `RaftLog.propose` is the `Propose` port the `Batcher` calls.

The library is ticked from the asyncio loop (``autoTick=False``), not from its own thread:
right away when a proposal or a Raft message arrives, and for its timers every 2 ms while the
log moves, every 10 ms once a tick changed nothing (an idle member ticking every 2 ms used
9 % of a core). With a tick thread, every hand-over between it and the loop waited on the
GIL (measured: a commit's two hops took 2-3 ms each and a three-member commit 10 ms at p50);
on the loop, the library, the transport and the state machine run one after another without
hand-overs. A tick that comes late because the member itself was busy (a long tick, the loop
held elsewhere) moves the library's timers on by the delay (`_forgive`), except those a
message handled meanwhile set afresh.

Configuration choices (research note on the Raft library, sections 3.5, 3.9 and 4):
- ``appendEntriesUseBatch=False``: an entry is sent as soon as it is proposed (one-by-one
  commits in well under a millisecond of library time instead of the 100 ms batch period);
  our own `Batcher` puts many orders in one entry.
- ``appendEntriesBatchSizeBytes`` above the largest entry: the library sends an entry at
  least that large as a "transmission" of pickled chunks, a path that skips the overlap rule
  (`peerbook.replication.overlap`) and unpickles what arrives; with this bound it never does.
- A tick 2 ms after a tick that moved the log (term, length, commit or apply index), 10 ms
  after one that did not: the library commits an entry on the tick after the one that
  appended it, and runs elections and heartbeats from ticks, which 10 ms of lateness does
  not disturb (their timeouts are hundreds of milliseconds).
- No pickle crosses the network (`GrenacheRaftTransport`), and what the library pickles
  locally is read back through `safe_pickle` (installed when a `RaftLog` is created).
- Log compaction, when a data directory is given: every ``snapshot_entries`` entries the
  state machine's JSON snapshot is written by a forked child (`SnapshotStore`) and the log
  and journal before it are dropped; a follower too far behind receives the snapshot file in
  1 MiB chunks, and a restart loads it before the journal's tail. Without a data directory the
  log stays in memory and is never compacted (the library's in-memory snapshot is a pickle).
"""

import asyncio
import functools
import gc
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.monotonic import monotonic
from pysyncobj.node import Node

from peerbook.errors import ReplicationError, SnapshotError, UnknownOutcomeError
from peerbook.grenache import WsRpcClient
from peerbook.replication import journal, safe_pickle
from peerbook.replication.entries import ENTRY_BYTES_MAX
from peerbook.replication.raft_transport import GrenacheRaftTransport, RaftEndpoint
from peerbook.replication.snapshot_store import SnapshotStore, boundary, end_orphaned_writer
from peerbook.replication.state_machine import OrderStateMachine, Outcome

__all__ = ["RaftLog", "end_orphaned_snapshot_writer"]

_log = logging.getLogger(__name__)
_TICK_S = 0.002
_IDLE_TICK_S = 0.01
_STALL_SLACK_S = 0.05
"""A tick that comes this much later than planned counts the rest as a stall (`_forgive`)."""
_NEVER = 2**62
_SNAPSHOT_NAME = "raft.snapshot"
_SNAPSHOT_CHUNK_BYTES = 2**20  # a 16 MiB Raft request holds a chunk with room to spare

_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}  # the library's _RAFT_STATE
_CANDIDATE = 1
_NOT_APPLIED = {
    FAIL_REASON.QUEUE_FULL: "the proposal queue is full",
    FAIL_REASON.MISSING_LEADER: "there is no leader (no quorum, or an election is running)",
    FAIL_REASON.NOT_LEADER: "the peer that was asked is not the leader",
    FAIL_REASON.REQUEST_DENIED: "the leader refused the proposal",
}


class _Member(SyncObj):  # type: ignore[misc]
    """The library's view of one member: a single replicated method."""

    def __init__(
        self,
        machine: OrderStateMachine,
        on_failure: Callable[[str], None],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self._machine = machine
        self._on_failure = on_failure
        self._broken = False
        super().__init__(*args, **kwargs)

    @replicated  # type: ignore[untyped-decorator]
    def apply_entry(self, text: str) -> list[Outcome]:
        # Called in the tick for each committed entry, in log order, with raftLastApplied
        # still at the previous index. The state machine is total: a command it cannot carry
        # out is an outcome, not an exception. What still raises is this peer's own failure
        # (its disk, its database, a defect) partway through an entry, which leaves part of
        # it applied: the library would apply the entry again on the next tick, which the
        # machine skips as done, and this replica would go on without the rest of it. So the
        # member stops, and no later entry is applied (the tick ends it; `_tick_forever`).
        index = self.raftLastApplied + 1
        if self._broken:
            raise ReplicationError(f"entry {index} not applied: an earlier entry failed")
        try:
            return self._machine.apply(index, text)
        except Exception as exc:
            self._broken = True
            self._on_failure(f"entry {index} could not be applied: {exc!r}")
            raise


class RaftLog:
    """This member's handle on the replicated log.

    Args:
        address: this member's node id, a `member_id` or a bare ``host:port``, naming its Raft
            RPC server (which must route requests for `RAFT_SERVICE_KEY` to
            ``endpoint.receive``).
        partners: the other voting members' node ids as this member last knew them; the
            journal's membership changes are applied on top when it is replayed.
        machine: the state machine committed entries are applied to.
        endpoint: the receiving half of the transport, wired to the RPC server.
        client: the WebSocket RPC client used to reach the partners (the Raft servers are
            `WsRpcServer`s).
        secret: the cluster secret.
        data_dir: where the journal lives; None keeps the log in memory only.
        propose_timeout_s: how long `propose` waits for its entry to be applied here.
        leader_fallback_s: a leader that hears from no majority for this long steps down, so
            that the minority side of a partition refuses writes within seconds (the library's
            default is 30 s).
        replica: follow as a non-voting replica (the library's read-only node): the log is
            replicated to it and it applies every entry, but it never votes or counts towards
            a majority; ``partners`` are then all the voting members.
        snapshot_entries: compact the log once it holds more entries than this (needs
            ``data_dir``); None never compacts, but a snapshot already in ``data_dir`` is
            still loaded.

    Attributes:
        failed: set when this member stopped for good because its state cannot be trusted
            (a snapshot that cannot be loaded); ``failure`` says why. The owner should stop.
    """

    def __init__(
        self,
        address: str,
        partners: Sequence[str],
        machine: OrderStateMachine,
        *,
        endpoint: RaftEndpoint,
        client: WsRpcClient,
        secret: bytes,
        data_dir: Path | None = None,
        propose_timeout_s: float = 10.0,
        leader_fallback_s: float = 2.0,
        replica: bool = False,
        snapshot_entries: int | None = None,
    ) -> None:
        safe_pickle.install()
        journal.install()
        _collector.install()
        self.machine = machine
        self._loop = asyncio.get_running_loop()
        self._propose_timeout_s = propose_timeout_s
        self._wake = asyncio.Event()
        self.failed = asyncio.Event()
        self.failure: str | None = None
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=False,
            appendEntriesBatchSizeBytes=2 * ENTRY_BYTES_MAX,
            leaderFallbackTimeout=leader_fallback_s,
            logCompactionMinEntries=_NEVER,
            logCompactionMinTime=_NEVER,
            journalFile=None if data_dir is None else str(data_dir / "raft.journal"),
            dynamicMembershipChange=True,
            onStateChanged=self._state_changed,
        )
        self.snapshots: SnapshotStore | None = None
        if data_dir is not None:
            _finish_compaction(data_dir)
            self.snapshots = SnapshotStore(data_dir / _SNAPSHOT_NAME, machine, self._fail)
            conf.fullDumpFile = str(self.snapshots.path)
            conf.serializer = self.snapshots.serialize
            conf.deserializer = self.snapshots.load
            conf.serializeChecker = self.snapshots.check
            conf.logCompactionBatchSize = _SNAPSHOT_CHUNK_BYTES
            conf.logCompactionMinEntries = snapshot_entries or _NEVER
        self._conf = conf
        self._transport = functools.partial(
            GrenacheRaftTransport,
            loop=self._loop,
            client=client,
            endpoint=endpoint,
            secret=secret,
            wake=self._wake.set,
            self_id=address,
        )
        self.address = address
        self._start_member(replica, partners)
        self._after_tick = self._timers()  # see `_forgive`
        self._ticker = asyncio.create_task(self._tick_forever())

    def _start_member(self, replica: bool, partners: Sequence[str]) -> None:
        self.replica = replica
        self._member = _Member(
            self.machine,
            self._fail,
            None if replica else Node(self.address),
            [Node(p) for p in partners if p != self.address],
            self._conf,
            nodeClass=Node,
            transportClass=self._transport,
        )

    def change_role(self, replica: bool, partners: Sequence[str]) -> None:
        """Restart this member's Raft member as a voter (``replica`` false) or as a replica,
        with ``partners`` the voting members: a replica that takes a free seat becomes a
        voter first and is then added (as a joiner is), and becomes a replica again if the
        seat was taken meanwhile. The journal and snapshot are loaded again: the state
        machine goes back to the snapshot and applies the journal's entries after it again,
        which gives the state it had."""
        if replica == self.replica:
            return
        self._member.destroy()
        # The old member's objects hold reference cycles and were frozen by the install that
        # loaded its snapshot (`OrderStateMachine.install`): given back to the collector and
        # collected now, before the new member's install freezes everything again.
        gc.unfreeze()
        gc.collect()
        self._start_member(replica, partners)
        self._after_tick = self._timers()
        self._wake.set()

    async def _tick_forever(self) -> None:
        wait = _TICK_S
        last = monotonic()
        while True:
            self._wake.clear()
            started = monotonic()
            stalled = started - last - wait - _STALL_SLACK_S
            if stalled > 0:
                self._forgive(stalled)
            last = started
            before = self._progress()
            try:
                # Twice: the library folds acknowledgements into the commit index at the start
                # of a tick, so the tick after the one that delivered them commits and applies.
                for _ in range(2):
                    self._member._SyncObj__transport.hold_election()
                    self._member.doTick(0.0)
            except Exception:
                # What the library's own tick thread does: log, and carry on ticking.
                _log.exception("Raft tick failed")
            self._after_tick = self._timers()
            if _collector.slow_full_collection:
                _collector.slow_full_collection = False
                gc.freeze()  # see `_CollectorWatch`
            if self.failed.is_set():
                # Stop before the next tick: no more acknowledgements, votes or applies on
                # top of a state this member does not have.
                self._member.destroy()
                return
            wait = _TICK_S if self._progress() != before else _IDLE_TICK_S
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _timers(self) -> tuple[float, dict[Any, float]]:
        """The library's election deadline and when it last heard from each member."""
        member = self._member
        return member._SyncObj__raftElectionDeadline, dict(member._SyncObj__lastResponseTime)

    def _forgive(self, stalled: float) -> None:
        """Move the library's timers on by ``stalled`` seconds in which this member was not
        ticking (a long tick, or the loop busy elsewhere: a snapshot install, a large
        apply): without this, a follower would stand for election and a leader step down
        over their own pause, not the others' silence. Only the timers that nothing set
        since the last tick ended are moved: a message handled between ticks (the transport
        hands them over as they arrive) set its timer afresh, and moved on as well it would
        put that member's next election, or the leader's step-down, a whole stall late.
        Private attributes of pinned pysyncobj 0.3.17."""
        deadline, heard_then = self._after_tick
        member = self._member
        if member._SyncObj__raftElectionDeadline == deadline:
            member._SyncObj__raftElectionDeadline = deadline + stalled
        heard = member._SyncObj__lastResponseTime
        for node, when in heard.items():
            if heard_then.get(node) == when:
                heard[node] = when + stalled

    def _progress(self) -> tuple[int, int, int, int]:
        """What a tick that did something changes: term, log length, commit and apply index."""
        member = self._member
        return (
            member.raftCurrentTerm, member._getRaftLogSize(),
            member.raftCommitIndex, member.raftLastApplied,
        )  # fmt: skip

    async def propose(self, text: str) -> list[Outcome]:
        """Commit an entry and return its outcomes once it is applied on this member.

        Raises:
            ReplicationError: the entry was certainly not applied (no quorum or no leader as
                far as this member knows, queue full).
            UnknownOutcomeError: the entry may or may not have been applied (leader change,
                or no answer within ``propose_timeout_s``).
        """
        if self.failed.is_set():
            raise ReplicationError(f"this member has stopped: {self.failure}")
        if not self.has_quorum:
            raise ReplicationError("this member does not reach a majority of the cluster")
        future: asyncio.Future[list[Outcome]] = self._loop.create_future()

        def settle(result: Any, error: int) -> None:  # in the tick, on the loop
            _settle(future, result, error)

        self._member.apply_entry(text, callback=settle)
        self._wake.set()
        try:
            async with asyncio.timeout(self._propose_timeout_s):
                return await future
        except TimeoutError as exc:
            raise UnknownOutcomeError(
                f"no confirmation within {self._propose_timeout_s:g} s; the entry may still "
                "be applied"
            ) from exc

    async def add_member(self, node_id: str) -> None:
        """Add a voting member (one change at a time, as the library requires); returns once
        the change is committed. The new member must already be running, with the current
        members as its partners, when there are two members or fewer, since it then counts
        towards the majority that commits its own addition.

        Raises:
            ReplicationError, UnknownOutcomeError: as `propose`.
        """
        await self._change(self._member.addNodeToCluster, node_id)

    async def remove_member(self, node_id: str) -> None:
        """Remove a voting member; returns once the change is committed (as `add_member`)."""
        await self._change(self._member.removeNodeFromCluster, node_id)

    async def _change(self, change: Any, node_id: str) -> None:
        future: asyncio.Future[Any] = self._loop.create_future()

        def settle(result: Any, error: int) -> None:
            _settle(future, result, error)

        change(node_id, callback=settle)
        self._wake.set()
        try:
            async with asyncio.timeout(self._propose_timeout_s):
                await future
        except TimeoutError as exc:
            raise UnknownOutcomeError(
                f"membership change for {node_id} not confirmed within "
                f"{self._propose_timeout_s:g} s"
            ) from exc

    async def hand_over_leadership(self, timeout_s: float = 10.0) -> None:
        """If this member leads, make another one leader (Raft's TimeoutNow, to the most
        caught-up follower) and return once this member no longer leads.

        Raises:
            ReplicationError: still the leader after ``timeout_s``.
        """
        deadline = self._loop.time() + timeout_s
        while self.role == "leader":
            if self._loop.time() > deadline:
                raise ReplicationError(f"leadership not handed over in {timeout_s:g} s")
            self._member.transferLeadership()
            self._wake.set()
            await asyncio.sleep(0.3)

    @property
    def members(self) -> list[str]:
        """The node ids of the voting members as this member knows them (itself included
        unless it is a replica)."""
        voters = {str(node.id) for node in self._member.otherNodes}
        if not self.replica:
            voters.add(self.address)
        return sorted(voters)

    @property
    def role(self) -> str:
        """``leader``, ``follower`` (a candidate counts as one) or ``replica``."""
        if self.replica:
            return "replica"
        return "leader" if self._member._isLeader() else "follower"

    @property
    def log_entries(self) -> int:
        """How many entries the library's log holds (in memory, and in the journal): those
        since the last compaction, and any appended while a snapshot is being written."""
        return int(self._member._getRaftLogSize())

    @property
    def has_quorum(self) -> bool:
        """Whether this member is in touch with a majority of the cluster (itself included)."""
        return bool(self._member.hasQuorum)

    @property
    def leader(self) -> str | None:
        """The address of the last known leader, or None."""
        leader = self._member._getLeader()
        return None if leader is None else str(leader.id)

    def _state_changed(self, old: int, new: int) -> None:
        """Log every change of Raft state, with the term and the log's end: an operator (or
        a fault run's logs) can then tell when elections ran and who won."""
        member = getattr(self, "_member", None)  # also called while the member is built
        if member is None:
            return
        # The library becomes a candidate before it moves to the term it stands in.
        term = member.raftCurrentTerm + (new == _CANDIDATE)
        _log.info(
            "raft state %s -> %s, term %d, log end %d, commit %d",
            _STATE_NAMES.get(old, old), _STATE_NAMES.get(new, new), term,
            member._getRaftLogSize() and member._SyncObj__getCurrentLogIndex(),
            member.raftCommitIndex,
        )  # fmt: skip

    def _fail(self, reason: str) -> None:
        _log.critical("this member stops: %s", reason)
        self.failure = reason
        self.failed.set()

    def close(self) -> None:
        """Stop ticking, close the transport and abandon a snapshot being written; give
        what installs froze back to the cyclic collector (see `change_role`)."""
        self._ticker.cancel()
        if not self.failed.is_set():
            self._member.destroy()
        if self.snapshots is not None:
            self.snapshots.close()
        gc.unfreeze()


class _CollectorWatch:
    """Notices a slow full collection of CPython's cyclic collector; the tick then freezes
    what survived it (`gc.freeze`), so that later full collections no longer walk it.

    Why: a member's heap grows with every order it holds, and each full collection walks
    all of it, holding the event loop meanwhile. Measured in session 15
    (`benchmarks/catchup.py`, 400,000 orders, every member holding every order and trade):
    92 full collections over 50 ms during the load, median 0.33 s, longest 1.84 s, and both
    elections of that run came right after one of 0.42-0.48 s on the leader, longer than
    the shortest election timeout (0.4 s). What survives a full collection is reachable,
    so freezing it right after keeps no garbage; what it costs is that objects alive then
    which later become cyclic garbage stay until the member is replaced or closed
    (`RaftLog.change_role`, `RaftLog.close`). Once frozen, full collections are short
    again until the unfrozen heap has grown as large, so freezes are rare and what each
    keeps is at most what was in flight at that moment."""

    SLOW_S = 0.05

    def __init__(self) -> None:
        self.slow_full_collection = False
        self._started = 0.0

    YOUNG_THRESHOLD = 20_000
    """Allocations between two collections of the youngest generation (CPython: 700). A
    member allocates and frees a few dozen containers per order it applies (the entry's
    JSON, the command, its events), nearly all freed by reference counting within the
    entry; collected every 700 allocations, they were walked while still alive. At 20,000
    most are gone before a collection comes: 47,952 -> 42,848 instructions per applied
    order (callgrind, entries of 500 crossing orders), for young collections of a
    millisecond or so."""

    def install(self) -> None:
        """Watch the collector, and space its young collections out (once per process)."""
        if self._watch not in gc.callbacks:
            gc.callbacks.append(self._watch)
            gc.set_threshold(self.YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    def _watch(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = monotonic()
        elif monotonic() - self._started > self.SLOW_S:
            self.slow_full_collection = True


_collector = _CollectorWatch()


def _settle(future: asyncio.Future[Any], result: Any, error: int) -> None:
    if future.done():
        return
    if error == FAIL_REASON.SUCCESS:
        future.set_result(result)
    elif error in _NOT_APPLIED:
        future.set_exception(ReplicationError(_NOT_APPLIED[error]))
    else:
        future.set_exception(
            UnknownOutcomeError(f"the entry may or may not have been applied (reason {error})")
        )


def end_orphaned_snapshot_writer(data_dir: Path) -> None:
    """End a snapshot writer that a previous run of the member keeping its log in
    ``data_dir`` left running (`end_orphaned_writer`): call before binding any port."""
    end_orphaned_writer(data_dir / _SNAPSHOT_NAME)


def _finish_compaction(data_dir: Path) -> None:
    """Finish a compaction a kill interrupted between putting the snapshot in place and
    rewriting the journal (`peerbook.replication.journal.complete_compaction`)."""
    snapshot = data_dir / _SNAPSHOT_NAME
    if not snapshot.exists():
        return
    try:
        entries = boundary(snapshot)
    except (OSError, SnapshotError):
        return  # the library's load fails and stops the peer, saying why
    if journal.complete_compaction(data_dir / "raft.journal", entries):
        _log.warning("finished a log compaction that was interrupted (journal rewritten)")
