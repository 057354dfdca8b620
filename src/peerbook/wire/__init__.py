"""The wire forms of the contract: JSON requests in, CCXT structures out; pure, no I/O.

`peerbook.wire.requests` turns the contract's request arguments (section 3) and log lines
(section 7) into engine commands, or into a `RequestError` with the error class and sentence
of section 4. `peerbook.wire.views` turns engine orders and trades into CCXT structures with
decimal strings.
"""

from peerbook.wire.requests import RequestError, decode_cancel, decode_create, decode_entry
from peerbook.wire.views import format_datetime, order_view, trade_view

__all__ = [
    "RequestError",
    "decode_cancel",
    "decode_create",
    "decode_entry",
    "format_datetime",
    "order_view",
    "trade_view",
]
