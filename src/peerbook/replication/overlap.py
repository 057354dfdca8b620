"""The Raft §5.3 rule for overlapping AppendEntries, which pysyncobj does not follow.

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
entry matches and the follower's log goes on beyond them, the message becomes a heartbeat at
the end of the follower's log, which is safe only if that tail was written in the leader's own
term (a leader never changes an entry of its term: Raft's Log Matching property); otherwise the
message is left to the library.

A second deviation: a follower that lacks ``prevLogIdx`` answers "resume after my last
entry". When its tail holds uncommitted entries of an old term (a deposed leader's), the
leader then sends from that point, the follower finds a conflict and asks to go one back,
but the leader's pipelined messages beyond the follower's end arrive right after and each
answer "after my last entry" again, the last answer wins, and the follower never catches up
(seen after pausing a leader under load: it stayed behind forever while the others went
on). Such a message is rewritten into a mismatch at the follower's first uncommitted index,
so that the library answers "resume from my commit index": entries up to it are in the
leader's log (Leader Completeness), and the matching-prefix rule above takes over from there.
"""

from collections.abc import Callable
from typing import Any

__all__ = ["trim_overlap"]

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj stores them


def trim_overlap(
    message: dict[str, Any],
    entry_at: Callable[[int], Entry | None],
    last_index: int,
    commit_index: int,
) -> dict[str, Any]:
    """The message to hand to the library instead of ``message``.

    Args:
        message: an ``append_entries`` message with ``prevLogIdx`` (a heartbeat carries no
            entries, and is just as able to truncate).
        entry_at: the follower's entry at an index, or None if it has none there.
        last_index: the index of the follower's last entry.
        commit_index: the follower's commit index: entries up to it are committed, and a
            committed entry is in every later leader's log (Raft's Leader Completeness).
    """
    entries: list[Entry] = message.get("entries") or []
    if "transmission" in message:
        return message
    if message["prevLogIdx"] > last_index > commit_index:
        return {**message, "prevLogIdx": commit_index + 1, "prevLogTerm": -1, "entries": []}
    previous = entry_at(message["prevLogIdx"])
    if previous is None or previous[2] != message["prevLogTerm"]:
        return message  # the library answers a mismatch itself
    matched = 0
    for entry in entries:
        local = entry_at(entry[1])
        if local is None or local[2] != entry[2]:
            break
        matched += 1
    if matched < len(entries):
        if matched == 0:
            return message  # a conflict at the first entry, or new entries past our end
        last = entries[matched - 1]
        return {
            **message,
            "prevLogIdx": last[1],
            "prevLogTerm": last[2],
            "entries": entries[matched:],
        }
    # Every entry matched (a heartbeat matches trivially): nothing should be deleted.
    last = entries[-1] if entries else previous
    if last_index == last[1]:
        return {**message, "prevLogIdx": last[1], "prevLogTerm": last[2], "entries": []}
    # The follower holds more. Its committed entries are in the leader's log; an uncommitted
    # one is too if it is of the leader's own term (terms never decrease along a log, so the
    # first uncommitted entry tells for all that follow).
    known_index = max(last[1], commit_index)  # up to here, every entry is in the leader's log
    first_unsure = entry_at(known_index + 1)
    if first_unsure is None or first_unsure[2] == message["term"]:
        end = entry_at(last_index)
        if end is not None:
            return {**message, "prevLogIdx": end[1], "prevLogTerm": end[2], "entries": []}
    # The tail after the last entry known to be in the leader's log (the message's, or the
    # commit index) is of an older term and may not be: let the library cut it there, and
    # no earlier. Cut at the message's last entry instead, it would also drop committed,
    # applied entries (seen in the soak: a follower paused for six seconds, then sent a
    # message that ended below its commit index, logged "truncating already-applied log
    # entries").
    known = entry_at(known_index)
    if known is not None and known_index > last[1]:
        return {**message, "prevLogIdx": known[1], "prevLogTerm": known[2], "entries": []}
    return message
