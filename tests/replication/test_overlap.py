"""Raft §5.3 for overlapping AppendEntries: keep matching entries, cut only at a conflict."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from peerbook.replication.overlap import Trimmed, tail_after_snapshot, trim_overlap

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


def trim(local: list[Entry], message: dict[str, Any], commit_index: int = 0) -> Trimmed:
    def entry_at(index: int) -> Entry | None:
        return local[index - 1] if 1 <= index <= len(local) else None

    return trim_overlap(message, entry_at, len(local), commit_index)


def apply_like_pysyncobj(local: list[Entry], trimmed: Trimmed) -> list[Entry]:
    """The follower's log after the library handled ``trimmed`` (see `follow`)."""
    return follow(local, trimmed, 0)[0]


def follow(local: list[Entry], trimmed: Trimmed, commit_index: int) -> tuple[list[Entry], int, int]:
    """What pysyncobj 0.3.17 does with an ``append_entries`` (``__onMessageReceived``), with the
    transport's cap at the claim: the follower's log, the ``next_node_idx`` it answers, and
    its commit index after."""
    message = trimmed.message
    prev = message["prevLogIdx"]
    if not 1 <= prev <= len(local):
        return local, len(local) + 1, commit_index  # "resume after my last entry"
    if local[prev - 1][2] != message["prevLogTerm"]:
        return local, prev, commit_index  # "go back to prevLogIdx"
    kept = local[:prev] + list(message["entries"])  # everything after prevLogIdx is deleted
    answer = kept[-1][1] + 1 if message["entries"] else prev + 1
    if trimmed.claim is not None:
        answer = min(answer, trimmed.claim + 1)
    commit_index = min(commit_index, len(kept))
    if message["commit_index"] > commit_index:
        commit_index = min(message["commit_index"], len(kept))
    return kept, answer, commit_index


def test_a_stale_overlapping_message_no_longer_shrinks_the_log() -> None:
    local = log(1, 2, 2, 2, 2, 2)  # indexes 1..6
    stale = append((2, 2), log(2, 2, start=3))  # entries 3..4, already held
    assert apply_like_pysyncobj(local, Trimmed(stale)) == local[:4]  # the library: 5, 6 lost
    assert apply_like_pysyncobj(local, trim(local, stale)) == local  # ours: nothing lost


def test_a_stale_heartbeat_no_longer_shrinks_the_log() -> None:
    local = log(1, 2, 2, 2)
    trimmed = trim(local, append((2, 2), []))
    assert follow(local, trimmed, 0)[:2] == (local, 5)  # term 2's entries are the leader's


def test_committed_entries_of_an_older_term_are_kept_and_claimed() -> None:
    local = log(1, 1, 1, 1)  # all committed before the current leader's term 2
    message = append((2, 1), [])
    assert follow(local, trim(local, message, commit_index=4), 4)[:2] == (local, 5)


def test_entries_of_an_older_term_acknowledged_to_this_leader_are_never_cut() -> None:
    """The CI smoke run's loss. The term-2 leader re-sent the term-1 entries 3..4, then its
    own 5..6; the follower acknowledged all of them, and the leader committed 6 with it. A
    message the leader sent earlier ends at 2: cutting the follower's log after 2 (or after
    its commit index) lost entries counted towards a commit."""
    local = log(1, 1, 1, 1, 2, 2)
    stale = append((1, 1), [(b"c2", 2, 1)])
    after, answer, _ = follow(local, trim(local, stale, commit_index=1), 1)
    assert after == local
    assert answer == 7  # 5..6 are of the leader's term, so the whole log is the leader's


def test_an_older_terms_tail_nothing_has_checked_is_kept_but_not_claimed() -> None:
    """A deposed leader's entries 3..4 may not be in the new leader's log: the follower keeps
    them (only a conflict removes an entry), but claims and commits only up to 2."""
    local = log(1, 1, 1, 1)
    heartbeat = {**append((2, 1), []), "commit_index": 4}
    after, answer, commit = follow(local, trim(local, heartbeat, commit_index=1), 1)
    assert (after, answer, commit) == (local, 3, 2)


def test_the_claim_covers_the_committed_entries_of_an_older_term() -> None:
    local = log(1, 1, 1, 1, 1, 1)  # 1..4 committed (and applied), 5..6 not known to be
    message = append((2, 1), [(b"c3", 3, 1)])
    assert apply_like_pysyncobj(local, Trimmed(message)) == local[:3]  # the library: 4 lost
    assert follow(local, trim(local, message, commit_index=4), 4)[:2] == (local, 5)


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
    assert trim(local, message) == Trimmed(message)


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
    assert trim(local, message) == Trimmed(message)


def test_a_deposed_leaders_tail_makes_the_follower_resume_from_its_commit_index() -> None:
    # The follower led in term 1 and appended 4..5 that never committed; the new leader's
    # pipelined message starts past the follower's end. The library alone would answer
    # "resume after 5", every time, and the conflict at 4..5 would never be found.
    local = log(1, 1, 1, 1, 1)
    ahead = append((9, 2), log(2, start=10))
    assert follow(local, Trimmed(ahead), 3)[1] == 6
    assert follow(local, trim(local, ahead, commit_index=3), 3)[:2] == (local, 4)


def test_a_message_past_the_end_of_a_fully_committed_log_is_left_to_the_library() -> None:
    local = log(1, 1, 1)
    ahead = append((9, 2), log(2, start=10))
    assert trim(local, ahead, commit_index=3) == Trimmed(ahead)


LEADER_TERM = 9


@st.composite
def follower_and_message(draw: st.DrawFn) -> tuple[list[Entry], int, list[Entry], Any]:
    """A leader's log in term 9, a follower's log and commit index that Raft allows beside
    it, and an ``append_entries`` the leader could have sent at some point of its term
    (any range of its log, any commit index it had: messages arrive late and re-sent)."""
    shared = [(b"s%d" % i, i, t) for i, t in enumerate(sorted(draw(terms(1, 6, 0, 2))), 1)]
    older = sorted(draw(terms(0, 5, 2, 8, parity=0)))  # a past leader's, re-sent by ours
    own = draw(st.integers(0, 5))
    leader = shared + [
        (b"l%d" % i, i, t) for i, t in enumerate(older + [LEADER_TERM] * own, len(shared) + 1)
    ]
    received = draw(st.integers(len(shared), len(leader)))  # what reached the follower
    follower = leader[:received]
    if received < len(shared) + len(older):  # then a deposed leader's tail may follow
        floor = follower[-1][2]
        stale = sorted(draw(terms(0, 5, floor, LEADER_TERM - 1, parity=1)))
        follower += [(b"x%d" % i, i, t) for i, t in enumerate(stale, received + 1)]
    commit_index = draw(st.integers(0, received))
    prev = draw(st.integers(1, len(leader)))
    last = draw(st.integers(prev, len(leader)))
    message = append((prev, leader[prev - 1][2]), leader[prev:last], term=LEADER_TERM)
    message["commit_index"] = draw(st.integers(0, len(leader)))
    return leader, commit_index, follower, message


def terms(
    low: int, high: int, floor: int, ceiling: int, parity: int | None = None
) -> st.SearchStrategy[list[int]]:
    """Lists of terms from ``floor`` to ``ceiling``; a past leader's are even and a deposed
    leader's odd, so that two different entries never share an index and a term."""
    values = [t for t in range(floor, ceiling + 1) if parity is None or t % 2 == parity]
    if not values:
        return st.just([])
    return st.lists(st.sampled_from(values), min_size=low, max_size=high)


def shared_prefix(a: list[Entry], b: list[Entry]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@given(follower_and_message())
@settings(max_examples=1500, deadline=None)
def test_no_message_loses_what_the_follower_shares_or_claims_what_it_does_not(
    case: tuple[list[Entry], int, list[Entry], Any],
) -> None:
    """Against any message, old or new: the follower keeps every entry it shares with the
    leader, claims (answers and commits) only entries it shares, and holds at least the
    message's entries afterwards."""
    leader, commit_index, follower, message = case
    after, answer, commit = follow(follower, trim(follower, message, commit_index), commit_index)
    shared_after = shared_prefix(after, leader)
    assert shared_after >= shared_prefix(follower, leader)
    assert commit <= shared_after
    if answer - 1 >= message["prevLogIdx"]:  # a success: the leader counts it towards commits
        assert answer - 1 <= shared_after


def test_a_snapshot_keeps_the_entries_after_its_last_when_that_entry_matches() -> None:
    before = log(1, 1, 2, 2, 2, start=10)  # indexes 10..14
    assert tail_after_snapshot(before, (b"s", 12, 2)) == before[3:]
    assert tail_after_snapshot(before, (b"s", 14, 2)) == []


def test_a_snapshot_keeps_nothing_when_its_last_entry_is_not_held_as_it_is() -> None:
    before = log(1, 1, 2, start=10)
    assert tail_after_snapshot(before, (b"s", 12, 3)) == []  # another term there: a conflict
    assert tail_after_snapshot(before, (b"s", 15, 2)) == []  # past the log
    assert tail_after_snapshot(before, (b"s", 9, 1)) == []  # before the log's start
