"""The Raft rules for overlapping AppendEntries (§5.3) and snapshots (§7), which pysyncobj does
not follow.

Raft: "If an existing entry conflicts with a new one (same index but different terms), delete
the existing entry and all that follow it"; entries that match are kept. pysyncobj 0.3.17
instead deletes *every* local entry after ``prevLogIdx`` whenever it has any, matching or not,
and appends the message's entries. The leader pipelines optimistically and re-sends ranges, so
an old or repeated message can shrink a follower's log below entries it already acknowledged
(and applied): the leader still counts them towards a majority, and losing the leader then can
lose acknowledged entries (research note on the Raft library, section 3.8).

`trim_overlap` rewrites such a message, before the library sees it, into one the library's rule
handles correctly: the matching prefix is dropped and ``prevLogIdx``/``prevLogTerm`` move to the
last matching entry, so that the library deletes only from the first real conflict. When every
entry matches and the follower's log goes on beyond them, nothing may be deleted at all: that
tail may hold entries this follower already acknowledged to the current leader (an older
term's entries the leader re-sent, and its own after them), which the leader has counted
towards a commit. Such a message becomes a heartbeat at the end of the follower's log, and
`Trimmed.claim` says how far the follower may claim to share the leader's log: the library
would answer "I hold all of it", which is true of the entries up to the message's last one,
of committed entries (Raft's Leader Completeness) and of a log that ends with an entry of the
leader's own term (Raft's Log Matching), but not of an older term's entries nothing has
checked. The transport caps the answer, and the commit index the follower adopts,
at the claim; the leader then re-sends from there, and a real conflict in that tail is found
and cut as usual.

A second deviation: a follower that lacks ``prevLogIdx`` answers "resume after my last
entry". When its tail holds uncommitted entries of an old term (a deposed leader's), the
leader then sends from that point, the follower finds a conflict and asks to go one back,
but the leader's pipelined messages beyond the follower's end arrive right after and each
answer "after my last entry" again, the last answer wins, and the follower never catches up
(seen after pausing a leader under load: it stayed behind forever while the others went
on). Such a message is rewritten into a mismatch at the follower's first uncommitted index,
so that the library answers "resume from my commit index": entries up to it are in the
leader's log (Leader Completeness), and the matching-prefix rule above takes over from there.

Snapshots (Raft §7, InstallSnapshot): "If existing log entry has same index and term as
snapshot's last included entry, retain log entries following it". pysyncobj clears the whole
log instead, so a follower sent a snapshot older than its log (seen in fault runs: "commit
index 6380 exceeds journal end 5992") lost entries it had acknowledged, even committed ones.
`tail_after_snapshot` says which entries the transport puts back after the library installed
the snapshot.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Trimmed", "tail_after_snapshot", "trim_overlap"]

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj stores them


@dataclass(frozen=True)
class Trimmed:
    """What to hand to the library instead of an ``append_entries`` message."""

    message: dict[str, Any]
    claim: int | None = None
    """The last index the follower may report as shared with the leader in its answer to
    ``message`` (its ``next_node_idx`` at most ``claim + 1``), and the highest commit index it
    may adopt from it; None when the library's own answer is exact."""


def trim_overlap(
    message: dict[str, Any],
    entry_at: Callable[[int], Entry | None],
    last_index: int,
    commit_index: int,
) -> Trimmed:
    """The message to hand to the library instead of ``message``, and the claim its answer
    must not exceed.

    Args:
        message: an ``append_entries`` message with ``prevLogIdx`` (a heartbeat carries no
            entries; the library would truncate on it just the same).
        entry_at: the follower's entry at an index, or None if it has none there.
        last_index: the index of the follower's last entry.
        commit_index: the follower's commit index: entries up to it are committed, and a
            committed entry is in every later leader's log (Raft's Leader Completeness).
    """
    entries: list[Entry] = message.get("entries") or []
    if "transmission" in message:
        return Trimmed(message)
    if message["prevLogIdx"] > last_index > commit_index:
        mismatch = {**message, "prevLogIdx": commit_index + 1, "prevLogTerm": -1, "entries": []}
        return Trimmed(mismatch)
    previous = entry_at(message["prevLogIdx"])
    if previous is None or previous[2] != message["prevLogTerm"]:
        return Trimmed(message)  # the library answers a mismatch itself
    matched = 0
    for entry in entries:
        local = entry_at(entry[1])
        if local is None or local[2] != entry[2]:
            break
        matched += 1
    if matched < len(entries):
        if matched == 0:
            return Trimmed(message)  # a conflict at the first entry, or new entries past our end
        last = entries[matched - 1]
        return Trimmed(
            {**message, "prevLogIdx": last[1], "prevLogTerm": last[2], "entries": entries[matched:]}
        )
    # Every entry matched (a heartbeat matches trivially): nothing may be deleted.
    last = entries[-1] if entries else previous
    end = entry_at(last_index)
    if last_index == last[1] or end is None:
        return Trimmed({**message, "prevLogIdx": last[1], "prevLogTerm": last[2], "entries": []})
    # The follower holds more. If its last entry is of the leader's term, all of it is the
    # leader's (Log Matching: an entry of that term came from this leader, after a check of
    # everything before it). Otherwise it shares what the message checked and what it has
    # committed (Leader Completeness), and perhaps nothing more.
    claim = last_index if end[2] == message["term"] else max(last[1], commit_index)
    heartbeat = {**message, "prevLogIdx": end[1], "prevLogTerm": end[2], "entries": []}
    heartbeat["commit_index"] = min(message["commit_index"], claim)
    return Trimmed(heartbeat, claim)


def tail_after_snapshot(before: Sequence[Entry], snapshot_last: Entry) -> list[Entry]:
    """The entries of the follower's log ``before`` a snapshot ending at ``snapshot_last`` was
    installed that it keeps after it: those following an entry of the same index and term
    (by Log Matching, everything up to that entry is the snapshot's; what follows may still
    conflict with the leader's log, and is checked and cut like any other entries); none if
    it holds no such entry."""
    index, term = snapshot_last[1], snapshot_last[2]
    first = before[0][1] if before else 0
    position = index - first
    if not 0 <= position < len(before) or before[position][2] != term:
        return []
    return list(before[position + 1 :])
