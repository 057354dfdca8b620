"""A restricted unpickler for what the Raft library still keeps as pickles on local disk.

pysyncobj pickles its log commands (``(method id, args)``), membership changes (which hold its
``Node`` objects) and journal metadata. Those bytes come from our own process or journal, but
a journal can be tampered with and a log entry is written by whichever peer was leader, so
unpickling is restricted to plain data and the library's node classes: a pickle that names any
other global (``os.system``, ``builtins.eval``, ...) raises `pickle.UnpicklingError` instead of
running. `install` puts the restricted loader into pysyncobj in place of its own.
"""

import io
import pickle
from typing import Any

__all__ = ["ALLOWED_GLOBALS", "install", "loads"]

_BUILTINS = ("set", "frozenset", "bytes", "bytearray", "object")

ALLOWED_GLOBALS = frozenset(
    {
        # protocol 2 names builtins by their Python 2 module, __builtin__
        *((module, name) for module in ("builtins", "__builtin__") for name in _BUILTINS),
        ("_codecs", "encode"),  # how protocol 2 pickles bytes
        ("copyreg", "_reconstructor"),  # how protocol 2 pickles plain objects
        ("pysyncobj.node", "Node"),
        ("pysyncobj.node", "TCPNode"),
    }
)


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle the global {module}.{name}")
        return super().find_class(module, name)


def loads(data: bytes | str) -> Any:
    """Unpickle ``data`` allowing only plain data and the Raft library's node classes."""
    raw = data if isinstance(data, bytes) else data.encode()
    return _Restricted(io.BytesIO(raw)).load()


def _load(file: Any) -> Any:
    return _Restricted(file).load()


def install() -> None:
    """Make pysyncobj unpickle through the restricted loader (idempotent). Its modules call
    ``pysyncobj.pickle.loads`` / ``load`` at run time, so replacing those two is enough."""
    import pysyncobj.pickle as library_pickle

    library_pickle.loads = loads
    library_pickle.load = _load
