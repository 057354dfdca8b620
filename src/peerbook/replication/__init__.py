"""The replicated order log: commands batched into entries, ordered by Raft, applied by every
peer's state machine.

This version holds the parts that do not depend on the Raft library: the entry format, the
state machine that applies committed entries to the engine exactly once, and the batcher that
turns client commands into entries. The adapter to the Raft library (pysyncobj) that orders
the entries across peers is the next step.
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
