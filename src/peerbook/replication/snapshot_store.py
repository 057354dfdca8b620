"""Snapshots of the state machine on disk, written for the Raft library's log compaction.

pysyncobj compacts its log by asking for a snapshot of the state at its last applied index
and, once the snapshot is safely written, dropping the entries before it; it sends the same
file to a follower that is too far behind for the log, and loads it on a restart. Its default
snapshot is a pickle of the whole object, made on the thread that ticks it. Ours is the
state machine's canonical JSON (`OrderStateMachine.snapshot`), written by a forked child:

- *Consistent and off the hot path.* The library asks for the snapshot between two applied
  entries, on the event loop. ``fork`` freezes exactly that state (copy-on-write) at the cost
  of copying page tables; the child encodes and writes it while the parent goes on serving.
  The child touches nothing but the frozen state and one file: no logging, no event loop, no
  database, and it leaves through ``os._exit``.
- *Never half written.* The child writes ``NAME.partial.PID`` and fsyncs it; the parent
  renames it over the snapshot only after the child exited cleanly (`check`), and only then
  lets the library drop log entries. A crash at any point leaves the previous snapshot and the
  journal that completes it.
- *Checked before it is believed.* A snapshot file is a JSON header line (format, version,
  the library's two boundary entries and its member list, and the length and SHA-256 of the
  body) and the body. `load` verifies all of it, then installs the body into the state
  machine, which checks the engine and every part again.

How the library's hooks are used (pysyncobj 0.3.17, ``serializer.py``): ``serializer`` is
called with a temporary name the library then renames; our hook forks and returns before any
file exists, so that rename fails inside the library (which it tolerates) and the library
takes the outcome from ``serializeChecker`` instead, which is this module's `check`. The
test of compaction (tests/node/test_snapshots.py) fails if that contract changes.

A snapshot that cannot be loaded, for whatever reason, is fatal for this peer
(``on_failure``): the library would log the error and carry on as if it had loaded,
acknowledging entries to a leader on top of a state it does not have.

A child outlives a kill -9 of its parent, and one that hangs in the interpreter's after-fork
code (before its own code closes the descriptors it inherited) keeps the peer's listening
sockets for ever: the restarted peer could not bind its ports (the standard campaign of
session 12 lost a run to it). So the parent records the child it forked (``NAME.writer``:
its pid and start time) until it has reaped it, and a peer that starts ends a child its
previous run left (`end_orphaned_writer`), before it binds anything.
"""

import base64
import contextlib
import gc
import hashlib
import json
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj.config import SERIALIZER_STATE as _STATE
from pysyncobj.node import Node

from peerbook.errors import SnapshotError
from peerbook.replication.state_machine import OrderStateMachine

__all__ = [
    "CHILD_DEADLINE_S", "RETRY_AFTER_FAILURE_S", "SnapshotStore", "boundary",
    "end_orphaned_writer", "snapshot_end", "state_of",
]  # fmt: skip

RETRY_AFTER_FAILURE_S = 10
CHILD_DEADLINE_S = 900
"""How long the forked child may take to write a snapshot before SIGALRM ends it (or, should
it hang before arming the alarm, `SnapshotStore.check` in the parent)."""
_log = logging.getLogger(__name__)

_NOT_SERIALIZING: int = _STATE.NOT_SERIALIZING
_SERIALIZING: int = _STATE.SERIALIZING
_SUCCESS: int = _STATE.SUCCESS
_FAILED: int = _STATE.FAILED

_FORMAT = "peerbook-raft-snapshot"
_VERSION = 1

# The library's boundary entries: (command bytes, log index, term).
_Entry = tuple[bytes, int, int]


class SnapshotStore:
    """The snapshot file at ``path`` and the library's three hooks on it; ``written`` counts
    the snapshots put in place since it was made.

    Args:
        path: the snapshot file (the library's ``fullDumpFile``).
        machine: the state machine to snapshot and to install snapshots into.
        on_failure: called with a reason when a snapshot cannot be loaded.
    """

    def __init__(
        self, path: Path, machine: OrderStateMachine, on_failure: Callable[[str], None]
    ) -> None:
        self.path = path
        self._machine = machine
        self._on_failure = on_failure
        self._child: int | None = None
        self._retry_at = 0.0
        self._started = 0.0  # when the child writing a snapshot was forked (monotonic)
        self.written = 0
        self.last_write_s = 0.0
        """How long the last snapshot put in place took, from the fork to its rename."""
        for stale in path.parent.glob(f"{path.name}.partial.*"):
            stale.unlink(missing_ok=True)

    # -- the library's hooks --------------------------------------------------------------

    def serialize(self, temporary: str, raft_data: tuple[_Entry, _Entry, set[Node]]) -> None:
        """Start writing a snapshot of the state as it is now (the ``serializer`` hook)."""
        Path(temporary).unlink(missing_ok=True)  # the library's rename must find nothing
        if self._child is not None or time.monotonic() < self._retry_at:
            return
        last, before_last, members = raft_data
        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "entries": [_encode_entry(last), _encode_entry(before_last)],
            "members": sorted(str(node.id) for node in members if node is not None),
        }
        # No garbage collection in the child, from the fork on: another thread of the peer
        # (the audit trail's SQLite writer) may hold a library's lock at the moment of the
        # fork, and a collection that frees one of that library's objects (a cursor in a
        # cycle) would wait on the lock for ever, since its holder does not exist in the
        # child. Disabled in the parent just before, because the child's first allocations
        # (in the interpreter's own after-fork code) can already start a collection.
        collecting, child = gc.isenabled(), -1
        gc.disable()
        try:
            child = os.fork()
        finally:
            if child != 0 and collecting:
                gc.enable()
        if child == 0:  # pragma: no cover - runs in the child, reported through its exit code
            code = 1
            try:
                with contextlib.suppress(OSError):  # its own group: `_end` ends what it starts
                    os.setpgid(0, 0)
                with contextlib.suppress(ValueError, OSError):  # the event loop's, not ours
                    signal.signal(signal.SIGALRM, signal.SIG_DFL)
                    signal.alarm(CHILD_DEADLINE_S)  # a child that hangs is killed: it failed
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                # Inherited listening sockets would keep the peer's ports bound after a kill
                # -9 of the parent, so that a restart could not serve on them until this
                # child is done: close every inherited descriptor (safe without collections:
                # no finalizer of an inherited object can close a reused descriptor).
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                _write(self.path.with_name(f"{self.path.name}.partial.{os.getpid()}"),
                       header, self._machine.snapshot())  # fmt: skip
                code = 0
            except BaseException:  # the reason goes to standard error (the peer's log)
                with contextlib.suppress(OSError):  # to descriptor 2: sys.stderr may be closed
                    os.write(2, traceback.format_exc().encode(errors="replace"))
            finally:
                os._exit(code)
        with contextlib.suppress(OSError):  # also here: the child may not have run yet
            os.setpgid(child, child)
        self._child = child
        self._started = time.monotonic()
        _record_writer(self.path, child)

    def check(self) -> int:
        """How the snapshot being written is doing (the ``serializeChecker`` hook), as the
        library's ``SERIALIZER_STATE``; on success the new snapshot has replaced the old."""
        child = self._child
        if child is None:
            return _NOT_SERIALIZING
        try:
            done, status = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            done, status = child, -1
        if done == 0:
            if time.monotonic() - self._started <= CHILD_DEADLINE_S:
                return _SERIALIZING
            # Past its deadline and still there: hung where its own alarm cannot end it, in
            # the interpreter's after-fork code before the alarm is armed (a soak saw a child
            # wait for ever on a lock of libfaketime, the fault harness's clock library).
            status = self._end(child)
        self._child = None
        _writer_file(self.path).unlink(missing_ok=True)
        partial = self.path.with_name(f"{self.path.name}.partial.{child}")
        if status != 0:
            _end_group(child)  # a child ended by its alarm leaves what it started
            partial.unlink(missing_ok=True)
            # Not again on the next tick: a snapshot that cannot be written (its reason is in
            # the log) would otherwise fork the peer again and again.
            self._retry_at = time.monotonic() + RETRY_AFTER_FAILURE_S
            _log.warning(
                "writing a snapshot failed (exit status %d); next attempt in %d s",
                status, RETRY_AFTER_FAILURE_S,
            )  # fmt: skip
            return _FAILED
        os.replace(partial, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.written += 1
        self.last_write_s = time.monotonic() - self._started
        _log.info(
            "wrote a snapshot (%.1f MiB) in %.2f s",
            self.path.stat().st_size / 2**20, self.last_write_s,
        )  # fmt: skip
        return _SUCCESS

    @staticmethod
    def _end(child: int) -> int:
        """Kill ``child``, and what it started, and reap it; a failed exit status."""
        _end_group(child)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        return -1

    def load(self, file_name: str) -> tuple[_Entry, _Entry, set[Node]]:
        """Install the snapshot in ``file_name`` into the state machine and return the
        library's part of it (the ``deserializer`` hook). On any failure ``on_failure`` is
        called before the error propagates to the library: not only a refused snapshot but
        also an error of this peer's own disk or database, or a defect, since the library
        treats them all alike (logged, then on as if installed)."""
        try:
            return self._load(Path(file_name))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, SnapshotError) else repr(exc)
            self._on_failure(f"cannot load the snapshot {file_name}: {reason}")
            raise

    def _load(self, path: Path) -> tuple[_Entry, _Entry, set[Node]]:
        header, body = _checked(path.read_bytes())
        last, before_last = (_decode_entry(e) for e in header["entries"])
        if self._machine.applied_index != last[1]:
            # Also when the machine is past the snapshot: the library now counts the
            # snapshot's last entry as the last one applied and delivers every entry after it
            # again, so the machine must be back at the snapshot to apply them. (A follower
            # sent an older snapshot has its journal cleared by the library; a machine that
            # kept its later state would then skip the leader's entries up to its own applied
            # index and diverge: found by the first soak, where such replicas acknowledged
            # orders under ids the log never gave them.)
            # A snapshot still being written is of the state this one replaces: put in place
            # afterwards, it would replace the newer snapshot on disk (and the audit trail's
            # database it copies may already be the install's).
            self.close()
            started = time.monotonic()
            self._machine.install(body, source=path)
            _log.info(
                "installed the snapshot at index %d (%.1f MiB) in %.2f s",
                last[1], len(body) / 2**20, time.monotonic() - started,
            )  # fmt: skip
        return last, before_last, {Node(member) for member in header["members"]}

    def close(self) -> None:
        """Abandon a snapshot being written: stop the child and remove its partial file.
        Only `check` may put a snapshot in place, because the library must drop the log
        before it in the same step (a snapshot newer than the journal's start would make a
        restart discard the journal's tail)."""
        child, self._child = self._child, None
        if child is not None:
            self._end(child)
            _writer_file(self.path).unlink(missing_ok=True)
            self.path.with_name(f"{self.path.name}.partial.{child}").unlink(missing_ok=True)


def end_orphaned_writer(path: Path, timeout_s: float = 5.0) -> None:
    """End the child that a previous run of this peer forked to write the snapshot at
    ``path`` and left behind (it was killed before reaping it), if that very process still
    runs (same pid and start time: a reused pid is left alone); wait up to ``timeout_s`` for
    it to exit, which releases every descriptor it inherited."""
    record = _writer_file(path)
    try:
        pid_text, started = record.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    if pid != os.getpid() and _start_time(pid) == started:
        _log.warning("ending snapshot writer %d, left running by this peer's previous run", pid)
        _end_group(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while _start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.01)
    record.unlink(missing_ok=True)


def _end_group(child: int) -> None:
    """Kill the process group a snapshot child leads: the child and the reader of the audit
    trail's database it runs (`peerbook.node.archive.image`), which, left behind, would go on
    copying the whole database. The group's id stays taken while any member lives, so no
    other process can have it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child, signal.SIGKILL)


def _writer_file(path: Path) -> Path:
    return path.with_name(f"{path.name}.writer")


def _record_writer(path: Path, child: int) -> None:
    """Note that ``child`` is writing the snapshot at ``path`` (`end_orphaned_writer`)."""
    started = _start_time(child)
    if started is not None:
        _writer_file(path).write_text(f"{child} {started}\n")


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot, field 22 of /proc/PID/stat), or
    None if it has exited (a zombie holds no descriptors) or cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name, in parentheses, may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def boundary(path: Path) -> tuple[_Entry, _Entry]:
    """The two log entries a compaction to the snapshot at ``path`` leaves at the start of
    the journal, in journal order (the one before the snapshot's last, then the last).

    Raises:
        OSError, SnapshotError: no readable snapshot there.
    """
    with path.open("rb") as file:
        header = _header(file.readline())
    last, before_last = (_decode_entry(e) for e in header["entries"])
    return before_last, last


def snapshot_end(head: bytes) -> tuple[int, int] | None:
    """The index and term of a snapshot's last entry, read from the first bytes of its file
    (the first chunk the leader sends), or None if they hold no valid header."""
    line, newline, _ = head.partition(b"\n")
    if not newline:
        return None
    try:
        _, index, term = _decode_entry(_header(line)["entries"][0])
    except SnapshotError:
        return None
    return index, term


def state_of(data: bytes) -> bytes:
    """The state machine snapshot in the bytes ``data`` of a snapshot file, checked
    against the file's header.

    Raises:
        SnapshotError: ``data`` is not a whole snapshot file.
    """
    return _checked(data)[1]


def _checked(data: bytes) -> tuple[dict[str, Any], bytes]:
    line, _, body = data.partition(b"\n")
    header = _header(line)
    if len(body) != header["body_bytes"] or (
        hashlib.sha256(body).hexdigest() != header["body_sha256"]
    ):
        raise SnapshotError("the snapshot body does not match its header")
    return header, body


def _write(path: Path, header: dict[str, Any], body: bytes) -> None:
    header = {**header, "body_bytes": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
    with path.open("wb") as file:
        file.write(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        file.write(body)
        file.flush()
        os.fsync(file.fileno())


def _header(line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"the snapshot header is not JSON: {type(exc).__name__}") from exc
    if not isinstance(header, dict) or (header.get("format"), header.get("version")) != (
        _FORMAT,
        _VERSION,
    ):
        raise SnapshotError(f"not a {_FORMAT} version {_VERSION} file")
    entries, members = header.get("entries"), header.get("members")
    if not (
        isinstance(entries, list)
        and len(entries) == 2
        and isinstance(members, list)
        and all(isinstance(m, str) for m in members)
        and type(header.get("body_bytes")) is int
        and isinstance(header.get("body_sha256"), str)
    ):
        raise SnapshotError("the snapshot header is incomplete")
    return header


def _encode_entry(entry: _Entry) -> list[Any]:
    command, index, term = entry
    return [base64.b64encode(command).decode(), index, term]


def _decode_entry(value: Any) -> _Entry:
    if not (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(type(v) is int for v in value[1:])
    ):
        raise SnapshotError(f"not a log entry: {value!r:.60}")
    try:
        command = base64.b64decode(value[0], validate=True)
    except ValueError as exc:
        raise SnapshotError("a log entry's command is not base64") from exc
    return command, value[1], value[2]
