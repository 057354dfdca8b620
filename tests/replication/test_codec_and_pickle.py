"""No pickle on the network (the JSON message codec) and restricted pickles on disk."""

import os
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerbook.errors import RemoteProtocolError
from peerbook.replication import safe_pickle
from peerbook.replication.codec import decode_message, encode_message

APPEND_ENTRIES = {
    "type": "append_entries",
    "term": 3,
    "commit_index": 41,
    "entries": [(b"\x00\x80\x02K\x01X\x05\x00\x00\x00hello\x85\x86q\x00.", 42, 3)],
    "prevLogIdx": 41,
    "prevLogTerm": 3,
    "serialized": (b"chunk", True, False),
    "request_id": None,
}

message_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def test_raft_message_round_trips_exactly() -> None:
    assert decode_message(encode_message(APPEND_ENTRIES)) == APPEND_ENTRIES


@given(message_values)
def test_any_message_of_supported_types_round_trips(message: object) -> None:
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"x": 1}',
        '{"b": "!!!"}',
        '{"t": 5}',
        '{"d": [1]}',
        '{"b": "", "t": []}',
        "[" * 50_000,
    ],
)
def test_anything_else_is_refused_as_a_protocol_error(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(text)


def test_encoding_refuses_types_it_cannot_carry() -> None:
    with pytest.raises(TypeError):
        encode_message({"node": object()})


class Marker:
    """Unpickling this would call os.getpid: a stand-in for code a pickle can run."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (os.getpid, ())


def test_restricted_unpickler_refuses_globals_that_run_code() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.getpid"):
        safe_pickle.loads(pickle.dumps(Marker(), protocol=2))


def test_restricted_unpickler_loads_what_pysyncobj_writes() -> None:
    from pysyncobj.node import TCPNode

    command = (7, ('{"v":1,"proposer":"p1","commands":[]}',))
    membership = ["add", "127.0.0.1:4000", TCPNode("127.0.0.1:4000")]
    assert safe_pickle.loads(pickle.dumps(command, protocol=2)) == command
    loaded = safe_pickle.loads(pickle.dumps(membership, protocol=2))
    assert loaded[:2] == membership[:2] and loaded[2].id == "127.0.0.1:4000"
    assert safe_pickle.loads(pickle.dumps({b"raw", frozenset({1})}, protocol=2)) == {
        b"raw",
        frozenset({1}),
    }


def test_install_routes_pysyncobj_unpickling_through_the_restricted_loader() -> None:
    import pysyncobj.pickle as library_pickle

    safe_pickle.install()
    with pytest.raises(pickle.UnpicklingError):
        library_pickle.loads(pickle.dumps(Marker(), protocol=2))
