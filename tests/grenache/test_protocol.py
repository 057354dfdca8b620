"""The Grenache wire formats, without sockets (research note sections 3 and 5)."""

import contextlib
import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerbook.errors import AnnounceError, GrapeError, LookupEmptyError, RemoteProtocolError
from peerbook.grenache import protocol


def test_request_body_is_compact_json_array_with_raw_utf8() -> None:
    body = protocol.encode_request("r1", "svc", {"ünï": "cödé", "n": [1, 2]})
    assert body == '["r1","svc",{"ünï":"cödé","n":[1,2]}]'.encode()


def test_error_reply_carries_message_and_null_data() -> None:
    assert protocol.encode_reply("r1", "boom", {"x": 1}) == b'["r1","boom",null]'


def test_request_and_reply_round_trip() -> None:
    body = protocol.encode_request("r", "k", [1, "a", None])
    assert protocol.decode_request(body) == ("r", "k", [1, "a", None])
    assert protocol.decode_reply(protocol.encode_reply("r", None, 5)) == ("r", None, 5)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{}", b'["r","k"]', b'[1,"k",null]', b'["r",2,null]', b"\xff\xfe"],
)
def test_malformed_request_raises_remote_protocol_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        protocol.decode_request(body)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_remote_protocol_error_only(body: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        protocol.decode_request(body)


def test_gzip_round_trip_and_raw_fallback() -> None:
    body = b'["r","k",1]'
    packed = protocol.pack_body(body, compress=True)
    assert packed[:2] == b"\x1f\x8b"
    assert protocol.unpack_body(packed, compressed=True, limit=100) == body
    assert protocol.unpack_body(body, compressed=True, limit=100) == body  # not gzip: raw


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"0" * 10_000_000)
    with pytest.raises(RemoteProtocolError):
        protocol.unpack_body(bomb, compressed=True, limit=65536)


def test_grc_compress_header_means_gzip_when_it_contains_gzip() -> None:
    assert protocol.wants_gzip("gzip") and protocol.wants_gzip("x-gzip")
    assert not protocol.wants_gzip("none") and not protocol.wants_gzip(None)


def test_immutable_key_is_sha1_of_bencoded_value() -> None:
    # The value captured from a real grape in the research note, section 3.4.
    assert protocol.immutable_key("hello world") == "6d33adc2b6b2c14c3036feefb7fedbca1a880527"


def test_grape_request_body_has_rid_and_data() -> None:
    document = json.loads(protocol.encode_grape_request(["svc", 5001]))
    assert set(document) == {"rid", "data"} and document["data"] == ["svc", 5001]


def test_grape_error_strings_with_status_200_raise() -> None:
    with pytest.raises(GrapeError, match="ERR_GRAPE_LOOKUP"):
        protocol.interpret_grape_reply("lookup", 200, b'"ERR_GRAPE_LOOKUP"')
    with pytest.raises(AnnounceError, match="No nodes to query"):
        protocol.interpret_announce(200, b'"No nodes to query"')
    with pytest.raises(GrapeError) as raised:
        protocol.interpret_grape_reply("put", 302, b'"302 sequence number less than current"')
    assert raised.value.status == 302


def test_announce_needs_a_positive_count() -> None:
    assert protocol.interpret_announce(200, b"3") == 3
    with pytest.raises(AnnounceError):
        protocol.interpret_announce(200, b"0")


def test_put_result_is_a_hash_not_an_error() -> None:
    target = "6d33adc2b6b2c14c3036feefb7fedbca1a880527"
    assert protocol.interpret_grape_reply("put", 200, json.dumps(target).encode()) == target
    with pytest.raises(GrapeError):
        protocol.interpret_grape_reply("put", 200, b'"v must be less than 1000 bytes in put()"')


def test_get_miss_is_an_empty_body() -> None:
    assert protocol.interpret_grape_reply("get", 200, b"") is None


def test_empty_lookup_raises_lookup_empty() -> None:
    with pytest.raises(LookupEmptyError):
        protocol.interpret_lookup("svc", 200, b"[]")
    assert protocol.interpret_lookup("svc", 200, b'["127.0.0.1:5001"]') == ["127.0.0.1:5001"]


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.1:x", ":80", "1.2.3.4:70000", 5])
def test_bad_lookup_entries_are_refused(entry: object) -> None:
    with pytest.raises(RemoteProtocolError):
        protocol.parse_peer(entry)
