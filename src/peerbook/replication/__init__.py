"""The replicated order log: commands batched into entries, ordered by Raft, applied by every
peer's state machine.

The parts: the entry format (`entries`), the state machine that applies committed entries
to the engine exactly once (`state_machine`), the batcher that turns client commands into
entries (`batcher`), the adapter that drives the Raft library, pysyncobj (`raft_adapter`; no
module outside this package imports the library), the transport that carries
the library's messages as signed JSON over Grenache WebSocket RPC (`raft_transport`,
`codec`), the library's journal and snapshots on disk (`journal`, `snapshot_store`), the
follower-side repairs of its log handling (`overlap`), and the restricted unpickler for what
it keeps on disk (`safe_pickle`).
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
