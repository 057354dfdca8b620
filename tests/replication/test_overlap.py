"""Raft §5.3 for overlapping AppendEntries: keep matching entries, cut only at a conflict."""

from typing import Any

from peerbook.replication.overlap import trim_overlap

Entry = tuple[bytes, int, int]


def log(*terms: int, start: int = 1) -> list[Entry]:
    return [(b"c%d" % i, i, term) for i, term in enumerate(terms, start=start)]


def append(prev: tuple[int, int], entries: list[Entry], term: int = 2) -> dict[str, Any]:
    return {
        "type": "append_entries",
        "term": term,
        "commit_index": 0,
        "prevLogIdx": prev[0],
        "prevLogTerm": prev[1],
        "entries": entries,
    }


def trim(local: list[Entry], message: dict[str, Any], commit_index: int = 0) -> dict[str, Any]:
    def entry_at(index: int) -> Entry | None:
        return local[index - 1] if 1 <= index <= len(local) else None

    return trim_overlap(message, entry_at, len(local), commit_index)


def apply_like_pysyncobj(local: list[Entry], message: dict[str, Any]) -> list[Entry]:
    """What the library does with a message whose previous entry matches: drop everything
    after prevLogIdx, then append the message's entries."""
    return [e for e in local if e[1] <= message["prevLogIdx"]] + list(message["entries"])


def test_a_stale_overlapping_message_no_longer_shrinks_the_log() -> None:
    local = log(1, 2, 2, 2, 2, 2)  # indexes 1..6
    stale = append((2, 2), log(2, 2, start=3))  # entries 3..4, already held
    assert apply_like_pysyncobj(local, stale) == local[:4]  # the library's way: 5 and 6 lost
    assert apply_like_pysyncobj(local, trim(local, stale)) == local  # ours: nothing lost


def test_a_stale_heartbeat_no_longer_shrinks_the_log() -> None:
    local = log(1, 2, 2, 2)
    assert apply_like_pysyncobj(local, trim(local, append((2, 2), []))) == local


def test_committed_entries_of_an_older_term_are_kept_too() -> None:
    local = log(1, 1, 1, 1)  # all committed before the current leader's term 2
    message = append((2, 1), [])
    assert apply_like_pysyncobj(local, trim(local, message, commit_index=4)) == local


def test_uncommitted_entries_of_an_older_term_are_left_to_the_library() -> None:
    local = log(1, 1, 1)  # written before term 2 and not known to be committed
    message = append((1, 1), [(b"c2", 2, 1)])
    assert trim(local, message, commit_index=1) is message


def test_an_older_terms_tail_is_cut_after_the_commit_index_not_before() -> None:
    """The soak's case: the message's entries end below the follower's commit index, and
    the follower's tail past that index is of an older term than the leader's."""
    local = log(1, 1, 1, 1, 1, 1)  # 1..4 committed (and applied), 5..6 not known to be
    message = append((2, 1), [(b"c3", 3, 1)])
    assert apply_like_pysyncobj(local, message) == local[:3]  # the library's way: 4 lost
    assert apply_like_pysyncobj(local, trim(local, message, commit_index=4)) == local[:4]


def test_a_conflict_still_truncates_from_the_conflict() -> None:
    local = log(1, 1, 1, 1)
    message = append((1, 1), [(b"c2", 2, 1), (b"new3", 3, 2)])
    assert apply_like_pysyncobj(local, trim(local, message)) == [*local[:2], (b"new3", 3, 2)]


def test_new_entries_past_the_end_are_appended_after_the_matching_ones() -> None:
    local = log(1, 2, 2)
    message = append((1, 1), [(b"c2", 2, 2), (b"c3", 3, 2), (b"c4", 4, 2)])
    assert apply_like_pysyncobj(local, trim(local, message)) == [*local, (b"c4", 4, 2)]


def test_a_mismatched_previous_entry_is_left_to_the_library() -> None:
    local = log(1, 1, 1)
    message = append((2, 2), [(b"x", 3, 2)])
    assert trim(local, message) is message


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
    assert trim(local, message) is message


def test_a_deposed_leaders_tail_makes_the_follower_resume_from_its_commit_index() -> None:
    # The follower led in term 1 and appended 4..5 that never committed; the new leader's
    # pipelined message starts past the follower's end. The library alone would answer
    # "resume after 5", every time, and the conflict at 4..5 would never be found.
    local = log(1, 1, 1, 1, 1)
    ahead = append((9, 2), log(2, start=10))
    rewritten = trim(local, ahead, commit_index=3)
    assert (rewritten["prevLogIdx"], rewritten["entries"]) == (4, [])
    assert rewritten["prevLogTerm"] != local[3][2]  # a mismatch: the library answers "from 4"


def test_a_message_past_the_end_of_a_fully_committed_log_is_left_to_the_library() -> None:
    local = log(1, 1, 1)
    ahead = append((9, 2), log(2, start=10))
    assert trim(local, ahead, commit_index=3) is ahead
