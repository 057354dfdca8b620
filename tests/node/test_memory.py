"""`peerbook.node.memory.release` hands freed memory in the middle of glibc's heap back to the
system, which freeing alone does not."""

import json
import subprocess
import sys

import pytest

from peerbook.node import memory

# Run in a fresh interpreter, so that the heap holds nothing but what the scenario allocates.
_SCENARIO = """
import json
from peerbook.node import memory

def heap_mib():
    resident, in_heap = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if not fields[0].endswith(":"):
                in_heap = fields[-1] == "[heap]"
            elif in_heap and fields[0] == "Rss:":
                resident += int(fields[1])
    return resident / 1024

blocks = [bytes([i % 256]) * 2048 for i in range(40_000)]  # 80 MiB from malloc, not pymalloc
above = [bytes(2048) for _ in range(100)]  # still in use, above them in the heap
del blocks
freed = heap_mib()
released = memory.release()
print(json.dumps({"freed": freed, "released": released, "after": heap_mib()}))
"""


@pytest.mark.skipif(memory.release() is False, reason="not glibc: no malloc_trim")
def test_free_pages_below_a_block_in_use_go_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCENARIO], capture_output=True, text=True, timeout=60, check=True
    )
    heap = json.loads(done.stdout)
    assert heap["released"] is True
    assert heap["freed"] > 70, "freeing alone returned the pages: nothing for release to do"
    assert heap["after"] < heap["freed"] - 60
