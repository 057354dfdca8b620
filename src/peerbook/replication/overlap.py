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
"""

from typing import Any

__all__ = ["trim_overlap"]

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj stores them


def trim_overlap(
    message: dict[str, Any], local: list[Entry], local_last: Entry | None
) -> dict[str, Any]:
    """The message to hand to the library instead of ``message``.

    Args:
        message: an ``append_entries`` message with ``prevLogIdx`` (a heartbeat carries no
            entries, and is just as able to truncate).
        local: the follower's entries from ``prevLogIdx`` on, at least one more than the
            message carries (fewer if the log ends sooner).
        local_last: the follower's last entry, or None for an empty log.
    """
    entries: list[Entry] = message.get("entries") or []
    if "transmission" in message or not local or local_last is None:
        return message
    previous = local[0]
    if previous[1] != message["prevLogIdx"] or previous[2] != message["prevLogTerm"]:
        return message  # the library answers a mismatch itself
    matched = 0
    for offset, entry in enumerate(entries, start=1):
        if offset >= len(local) or local[offset][1:] != entry[1:]:
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
    if local_last[1] == last[1]:
        return {**message, "prevLogIdx": last[1], "prevLogTerm": last[2], "entries": []}
    after = local[len(entries) + 1] if len(local) > len(entries) + 1 else None
    if after is not None and after[2] == message["term"]:
        return {**message, "prevLogIdx": local_last[1], "prevLogTerm": local_last[2], "entries": []}
    return message
