"""A peer's data directory: who it is, its credentials, the cluster secret, what it last knew
of the membership, and the journal (written by the replicated log).

Files (all JSON, written whole to a temporary file and renamed, so a crash leaves the old or
the new version, never half of one; secrets with mode 0600):

- ``peer.json``: ``{"peer": ID, "network": NAME, "raft": "host:port", "replica": BOOL}``,
  fixed at first start (a replica follows without voting).
  The Raft address is part of the member's identity in the Raft configuration, so a restart
  reuses it even when the API port is chosen afresh.
- ``credentials.json``: ``{"key": API_KEY, "secret": API_SECRET}`` (contract section 8).
- ``secret``: the cluster secret, hex, when this peer bootstrapped the network or was given it.
- ``members.json``: the voting members' node ids, last seen; the partners of a restart (the
  journal's own membership changes are applied on top of them).
- ``left``: present once the peer left its network for good (``peerbook leave``); a
  restart is then refused, since the others no longer count it as a member.
- ``audit.sqlite3`` (applied orders and trades), ``commands.jsonl`` (every applied
  command), ``nonces.log`` (accepted write nonces) and ``raft.journal`` (the replicated log)
  are written by their owners.
"""

import datetime
import json
import os
import secrets
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Credentials", "DataDir", "Identity", "read_secret"]

_SECRET_BYTES_MIN = 16


def read_secret(path: Path) -> bytes:
    """The cluster secret in the hex file ``path`` (``--secret-file``, or ``DIR/secret``).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not hex, or holds fewer than 16 bytes.
    """
    secret = bytes.fromhex(path.read_text().strip())
    if len(secret) < _SECRET_BYTES_MIN:
        raise ValueError(
            f"the cluster secret must be at least {_SECRET_BYTES_MIN} bytes "
            f"({2 * _SECRET_BYTES_MIN} hex digits)"
        )
    return secret


class Identity(NamedTuple):
    """What a peer is, fixed at its first start."""

    peer: str
    network: str
    raft: str
    replica: bool = False


class Credentials(NamedTuple):
    """The API key that identifies this peer as an owner, and the secret that signs writes."""

    key: str
    secret: str


def _write_json(path: Path, document: Any, *, private: bool = False) -> None:
    temporary = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(temporary, flags, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(document, file, sort_keys=True)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as file:
        return json.load(file)


class DataDir:
    """One peer's directory; created if missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    @property
    def journal(self) -> Path:
        """Where the replicated log keeps its journal."""
        return self.path / "raft.journal"

    @property
    def audit(self) -> Path:
        """The SQLite audit trail of applied orders and trades."""
        return self.path / "audit.sqlite3"

    @property
    def commands(self) -> Path:
        """Where the peer writes every applied command (``peerbook replay`` input)."""
        return self.path / "commands.jsonl"

    @property
    def nonces(self) -> Path:
        """Where the authenticator records the nonces it accepted."""
        return self.path / "nonces.log"

    def identity(self) -> Identity | None:
        """The identity of an earlier start, or None on a first start.

        Raises:
            ValueError: ``peer.json`` exists but is not a peer identity.
        """
        path = self.path / "peer.json"
        if not path.exists():
            return None
        document = _read_json(path)
        fields = ("peer", "network", "raft")
        if not isinstance(document, dict) or not all(
            isinstance(document.get(f), str) for f in fields
        ):
            raise ValueError(f"{path} is not a peer identity")
        replica = document.get("replica", False)
        if not isinstance(replica, bool):
            raise ValueError(f"{path}: replica is not a boolean")
        return Identity(document["peer"], document["network"], document["raft"], replica)

    def save_identity(self, identity: Identity) -> None:
        """Record the identity of a first start."""
        _write_json(self.path / "peer.json", identity._asdict())

    def credentials(self) -> Credentials:
        """This peer's API credentials, created (mode 0600) on first use."""
        path = self.path / "credentials.json"
        if path.exists():
            document = _read_json(path)
            if not isinstance(document, dict) or not all(
                isinstance(document.get(f), str) and document[f] for f in ("key", "secret")
            ):
                raise ValueError(f"{path} does not hold a key and a secret")
            return Credentials(document["key"], document["secret"])
        created = Credentials(secrets.token_hex(16), secrets.token_hex(32))
        _write_json(path, created._asdict(), private=True)
        return created

    def cluster_secret(self) -> bytes | None:
        """The cluster secret kept here, or None."""
        path = self.path / "secret"
        return read_secret(path) if path.exists() else None

    def save_cluster_secret(self, secret: bytes) -> None:
        """Keep the cluster secret here (mode 0600)."""
        temporary = self.path / "secret.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secret.hex() + "\n")
        os.replace(temporary, self.path / "secret")

    def members(self) -> list[str]:
        """The voting members last recorded (empty before the first record)."""
        path = self.path / "members.json"
        if not path.exists():
            return []
        document = _read_json(path)
        if not isinstance(document, list) or not all(isinstance(m, str) for m in document):
            raise ValueError(f"{path} is not a list of members")
        return document

    def save_members(self, members: list[str]) -> None:
        """Record the voting members."""
        _write_json(self.path / "members.json", sorted(members))

    def left(self) -> str | None:
        """What this peer left and when (``peerbook leave``), or None while it is a member."""
        path = self.path / "left"
        if not path.exists():
            return None
        document = _read_json(path)
        return str(document) if not isinstance(document, str) else document

    def save_left(self, network: str) -> None:
        """Record that this peer left ``network`` now."""
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        _write_json(self.path / "left", f"left network {network} at {when}")
