"""Raft §5.3 for overlapping AppendEntries: keep matching entries, cut only at a conflict."""

from typing import Any

from peerbook.replication.overlap import trim_overlap


def log(*terms: int, start: int = 1) -> list[tuple[bytes, int, int]]:
    return [(b"c%d" % i, i, term) for i, term in enumerate(terms, start=start)]


def append(
    prev: tuple[int, int], entries: list[tuple[bytes, int, int]], term: int = 2
) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": term,
        "commit_index": 0,
        "prevLogIdx": prev[0],
        "prevLogTerm": prev[1],
        "entries": entries,
    }


def apply_like_pysyncobj(
    local: list[tuple[bytes, int, int]], message: dict[str, Any]
) -> list[tuple[bytes, int, int]]:
    """What the library does with a message whose prev entry matches: drop everything after
    prevLogIdx, then append the message's entries."""
    kept = [e for e in local if e[1] <= message["prevLogIdx"]]
    return kept + list(message["entries"])


def follower_after(
    local: list[tuple[bytes, int, int]], message: dict[str, Any]
) -> list[tuple[bytes, int, int]]:
    prev = message["prevLogIdx"]
    window = [e for e in local if e[1] >= prev]
    return apply_like_pysyncobj(local, trim_overlap(message, window, local[-1]))


def test_a_stale_overlapping_message_no_longer_shrinks_the_log() -> None:
    local = log(1, 2, 2, 2, 2, 2)  # indexes 1..6
    stale = append((2, 2), log(2, 2, start=3))  # entries 3..4, already held
    assert apply_like_pysyncobj(local, stale) == local[:4]  # the library's way: 5 and 6 lost
    assert follower_after(local, stale) == local  # ours: nothing lost


def test_a_stale_heartbeat_no_longer_shrinks_the_log() -> None:
    local = log(1, 2, 2, 2)
    assert follower_after(local, append((2, 2), [])) == local


def test_a_conflict_still_truncates_from_the_conflict() -> None:
    local = log(1, 1, 1, 1)
    message = append((1, 1), [(b"c2", 2, 1), (b"new3", 3, 2)])
    assert follower_after(local, message) == [*local[:2], (b"new3", 3, 2)]


def test_new_entries_past_the_end_are_appended_after_the_matching_ones() -> None:
    local = log(1, 2, 2)
    message = append((1, 1), [(b"c2", 2, 2), (b"c3", 3, 2), (b"c4", 4, 2)])
    assert follower_after(local, message) == [*local, (b"c4", 4, 2)]


def test_a_tail_from_an_older_term_is_left_to_the_library() -> None:
    local = log(1, 1, 1)  # written before the current leader's term 2
    message = append((1, 1), [(b"c2", 2, 1)])
    assert trim_overlap(message, local, local[-1]) is message


def test_a_mismatched_previous_entry_is_left_to_the_library() -> None:
    local = log(1, 1, 1)
    message = append((2, 2), [(b"x", 3, 2)])
    assert trim_overlap(message, local[1:], local[-1]) is message


def test_snapshot_and_large_entry_transmissions_are_left_to_the_library() -> None:
    local = log(1, 1)
    message = {
        "type": "append_entries",
        "term": 1,
        "commit_index": 0,
        "prevLogIdx": 1,
        "prevLogTerm": 1,
        "transmission": "start",
        "data": b"x",
    }
    assert trim_overlap(message, local, local[-1]) is message
