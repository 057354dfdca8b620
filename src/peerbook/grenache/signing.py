"""Mutable DHT items (BEP 44): Ed25519-signed values a grape stores under the signer's key.

A mutable item's target is ``SHA-1(public key || salt)``; its signature covers the bencoded
fragment ``[4:salt<salt>]3:seqi<seq>e1:v<value>`` (research note section 3.4). The writer
bumps ``seq`` on every put; a grape refuses a put whose ``seq`` is not above the stored one.
"""

import hashlib
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from peerbook.grenache.protocol import Json

__all__ = [
    "MutableItem",
    "item_from_json",
    "public_key_hex",
    "sign_item",
    "signable",
    "target_of",
    "verify_item",
]

SALT_BYTES_MAX = 64


class MutableItem(NamedTuple):
    """A mutable value as stored and returned by a grape; binary fields are hex strings."""

    value: str
    seq: int
    public_key: str
    signature: str
    salt: str | None


def _bencode(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return str(len(raw)).encode() + b":" + raw


def signable(value: str, seq: int, salt: str | None) -> bytes:
    """The bytes an item's signature covers."""
    prefix = b"4:salt" + _bencode(salt) if salt else b""
    return prefix + b"3:seqi" + str(seq).encode() + b"e1:v" + _bencode(value)


def target_of(public_key: str, salt: str | None) -> str:
    """The 40-hex DHT target of the item of ``public_key`` (hex) and ``salt``."""
    data = bytes.fromhex(public_key) + (salt.encode() if salt else b"")
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def public_key_hex(private_key: Ed25519PrivateKey) -> str:
    """The 64-hex raw public key of ``private_key``."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_item(
    private_key: Ed25519PrivateKey, value: str, seq: int, salt: str | None = None
) -> MutableItem:
    """Sign ``value`` at ``seq`` (and ``salt``) with ``private_key``."""
    signature = private_key.sign(signable(value, seq, salt)).hex()
    return MutableItem(value, seq, public_key_hex(private_key), signature, salt)


def verify_item(item: MutableItem) -> bool:
    """Whether ``item``'s signature is valid for its key, value, seq and salt."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(item.public_key))
        key.verify(bytes.fromhex(item.signature), signable(item.value, item.seq, item.salt))
    except (ValueError, InvalidSignature):
        return False
    return True


def item_from_json(data: Json) -> MutableItem | None:
    """A mutable item from a put's ``data`` or a get's reply, or None if it is not one
    (wrong types, bad hex lengths, salt over 64 bytes)."""
    if not isinstance(data, dict):
        return None
    value, seq, key, sig, salt = (data.get(f) for f in ("v", "seq", "k", "sig", "salt"))
    if not (isinstance(value, str) and type(seq) is int and seq >= 0):
        return None
    if not (
        isinstance(key, str) and isinstance(sig, str) and (salt is None or isinstance(salt, str))
    ):
        return None
    try:
        if len(bytes.fromhex(key)) != 32 or len(bytes.fromhex(sig)) != 64:
            return None
    except ValueError:
        return None
    if salt is not None and (not salt or len(salt.encode()) > SALT_BYTES_MAX):
        return None
    return MutableItem(value, seq, key, sig, salt)
