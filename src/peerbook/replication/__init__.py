"""The replicated order log: commands batched into entries, ordered by Raft, applied by every
peer's state machine.

This version holds the parts the adapter to the Raft library (pysyncobj) will stand on: the
entry format, the state machine that applies committed entries to the engine exactly once,
the batcher that turns client commands into entries, the JSON codec that carries the
library's messages without pickle (`peerbook.replication.codec`), and the restricted
unpickler for what it keeps on disk (`peerbook.replication.safe_pickle`). The adapter itself,
a transport over Grenache HTTP, is the next step.
"""

from peerbook.replication.batcher import COMMAND_BYTES_MAX, Batcher, Propose
from peerbook.replication.entries import LogEntry, decode_entry, encode_entry
from peerbook.replication.state_machine import OrderStateMachine, Outcome

__all__ = [
    "COMMAND_BYTES_MAX",
    "Batcher",
    "LogEntry",
    "OrderStateMachine",
    "Outcome",
    "Propose",
    "decode_entry",
    "encode_entry",
]
