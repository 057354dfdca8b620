"""The peer's RPC API (contract sections 3 and 4): CCXT actions over Grenache.

`ApiService.handle` is the Grenache handler of the names ``peerbook:NET:rpc`` and
``peerbook:NET:peer:ID``. Reads answer from this peer's replica; writes are authenticated,
checked, and then go through the replicated log, and are answered only once their entry is
committed and applied here, from the events of that application.

Every error is an `RpcError` whose message starts with the contract's CCXT class, so that a
Node.js client sees ``InvalidOrder: price ... is not a multiple of tick 0.1`` and nothing
else; the peer keeps serving after any of them.
"""

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from peerbook.engine import (
    DuplicateOrderIgnored,
    Engine,
    Market,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
)
from peerbook.engine.engine import QUANTITY_MAX
from peerbook.errors import ReplicationError, RpcError, UnknownOutcomeError
from peerbook.grenache.protocol import Json
from peerbook.node.auth import AuthenticationFailed, Authenticator, NonceNotRecorded
from peerbook.node.history import Fill, History
from peerbook.node.metrics import PeerMetrics
from peerbook.replication import Outcome
from peerbook.wire import RequestError, decode_cancel, decode_create, order_view, trade_view
from peerbook.wire.queries import decode_book, decode_listing
from peerbook.wire.views import format_datetime

__all__ = ["READ_ACTIONS", "WRITE_ACTIONS", "ApiService", "StatusSource", "Submit"]

Submit = Callable[[str, str, list[Any]], Awaitable[Outcome]]
"""Send a command (op, owner, args) through the replicated log; its outcome once applied."""

WRITE_ACTIONS = frozenset({"createOrder", "cancelOrder"})
READ_ACTIONS = frozenset(
    {
        "fetchMarkets",
        "fetchOrder",
        "fetchOpenOrders",
        "fetchClosedOrders",
        "fetchOrderBook",
        "fetchTrades",
        "fetchMyTrades",
        "fetchStatus",
    }
)
_PAYLOAD_FIELDS = frozenset({"action", "args", "auth"})
_log = logging.getLogger(__name__)


class StatusSource(Protocol):
    """What `fetchStatus` reports about the replicated log."""

    @property
    def role(self) -> str: ...

    @property
    def leader(self) -> str | None: ...

    @property
    def members(self) -> list[str]: ...

    @property
    def writable(self) -> bool: ...


def _fail(error: RequestError | str) -> RpcError:
    return RpcError(str(error))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def market_view(market: Market) -> dict[str, Any]:
    """The CCXT market structure (fetchMarkets)."""
    price, amount = market.price_tick.text, market.amount_step.text
    return {
        "id": market.symbol,
        "symbol": market.symbol,
        "base": market.base,
        "quote": market.quote,
        "active": True,
        "precision": {"price": price, "amount": amount},
        "limits": {
            "amount": {"min": amount, "max": market.format_amount(QUANTITY_MAX)},
            "price": {"min": price, "max": market.format_price(QUANTITY_MAX)},
            "cost": {"min": None, "max": None},
        },
    }


class ApiService:
    """Answers the contract's actions for one peer.

    Args:
        peer: this peer's id, the owner of the orders it places.
        network: the network name.
        engine: this peer's replica (read only here).
        history: orders in any state, trades and fills (memory and the audit trail).
        auth: checks the ``auth`` of writes.
        submit: sends a write through the replicated log.
        status: the replicated log's view for fetchStatus.
        metrics: where requests and commit latencies are counted (None: nowhere).
    """

    def __init__(
        self,
        *,
        peer: str,
        network: str,
        engine: Engine,
        history: History,
        auth: Authenticator,
        submit: Submit,
        status: StatusSource,
        metrics: PeerMetrics | None = None,
    ) -> None:
        self.peer = peer
        names = (f"peerbook:{network}:rpc", f"peerbook:{network}:peer:{peer}")
        self._keys = frozenset({*names, *(f"{name}:ws" for name in names)})
        self._metrics = metrics
        self._request_ids = itertools.count(1)
        self.network = network
        self._engine = engine
        self._history = history
        self._auth = auth
        self._submit = submit
        self._status = status
        self._reads: dict[str, Callable[[list[Any]], Json]] = {
            "fetchMarkets": self._fetch_markets,
            "fetchOrder": self._fetch_order,
            "fetchOpenOrders": self._fetch_open_orders,
            "fetchClosedOrders": self._fetch_closed_orders,
            "fetchOrderBook": self._fetch_order_book,
            "fetchTrades": self._fetch_trades,
            "fetchMyTrades": self._fetch_my_trades,
            "fetchStatus": self._fetch_status,
        }

    async def handle(self, key: str, payload: Json) -> Json:
        """The Grenache handler: one request payload in, the CCXT reply out (or RpcError).

        ``key`` must be one of this peer's names: a request for another peer (a stale grape
        record, a port reused by another peer) is refused as not available here, so that a
        read of "this peer's orders" never answers with someone else's."""
        if key not in self._keys:
            raise _fail(
                f"ExchangeNotAvailable: this is peer {self.peer} of network {self.network}, "
                f"which does not serve {key:.80} (a stale announcement?)"
            )
        action = payload.get("action") if isinstance(payload, dict) else None
        known = isinstance(action, str) and (action in READ_ACTIONS or action in WRITE_ACTIONS)
        label = str(action) if known else "other"
        try:
            reply = await self._answer(payload)
        except RpcError as exc:
            self._count(label, exc)
            raise
        except Exception as exc:  # a defect: still a contract error, starting with a class
            _log.exception("%s failed", label)
            error = _fail(
                f"ExchangeError: this peer failed to handle the request ({type(exc).__name__}; "
                "its log says where)"
            )
            self._count(label, error)
            raise error from exc
        if self._metrics is not None:
            self._metrics.requests.labels(label, "ok").inc()
        return reply

    def _count(self, label: str, error: RpcError) -> None:
        if self._metrics is not None:
            self._metrics.requests.labels(label, str(error).partition(":")[0]).inc()

    async def _answer(self, payload: Json) -> Json:
        if not isinstance(payload, dict):
            raise _fail("BadRequest: payload is not a JSON object")
        extra = sorted(str(k) for k in payload if k not in _PAYLOAD_FIELDS)
        if extra:
            raise _fail(f"BadRequest: unknown payload fields {', '.join(extra):.80}")
        if "action" not in payload or "args" not in payload:
            raise _fail("BadRequest: payload needs both action and args")
        action, args = payload["action"], payload["args"]
        if not isinstance(action, str):
            raise _fail(f"BadRequest: action {action!r:.40} is not a string")
        if not isinstance(args, list):
            raise _fail("BadRequest: args is not a JSON array")
        read = self._reads.get(action)
        if read is not None:
            return read(args)
        if action in WRITE_ACTIONS:
            try:
                self._auth.check(action, args, payload.get("auth"))
            except AuthenticationFailed as exc:
                raise _fail(f"AuthenticationError: {exc}") from exc
            except NonceNotRecorded as exc:
                raise _fail(f"ExchangeNotAvailable: {exc}; nothing was applied") from exc
            if action == "createOrder":
                return await self._create_order(args)
            return await self._cancel_order(args)
        raise _fail(f"BadRequest: unknown action {action:.40}")

    # -- writes ----------------------------------------------------------------------------

    async def _create_order(self, args: list[Any]) -> Json:
        checked = decode_create(self.peer, _now_ms(), args, self._engine.markets)
        if isinstance(checked, RequestError):
            raise _fail(checked)
        outcome = await self._commit("createOrder", args)
        for event in outcome.events:
            if type(event) is OrderAccepted or type(event) is DuplicateOrderIgnored:
                return self._order_json(event.order_id)
        raise _fail(self._refusal(outcome))

    async def _cancel_order(self, args: list[Any]) -> Json:
        checked = decode_cancel(self.peer, _now_ms(), args, self._engine.markets)
        if isinstance(checked, RequestError):
            raise _fail(checked)
        found = self._engine.cancellable(checked)
        if isinstance(found, tuple):
            raise _fail(f"{found[0].value}: {found[1]}")
        outcome = await self._commit("cancelOrder", args)
        for event in outcome.events:
            if type(event) is OrderCancelled:
                return self._order_json(event.order_id)
        raise _fail(self._refusal(outcome))

    async def _commit(self, op: str, args: list[Any]) -> Outcome:
        if not self._status.writable:
            raise _fail(
                "ExchangeNotAvailable: this peer cannot commit now (no majority of the "
                "cluster reachable, or still joining); nothing was applied"
            )
        request = next(self._request_ids)
        started = time.perf_counter()
        try:
            outcome = await self._submit(op, self.peer, args)
        except UnknownOutcomeError as exc:
            _log.warning("%s unknown outcome", op, extra={"request": request, "error": str(exc)})
            raise _fail(
                f"RequestTimeout: {exc}; query the order by its clientOrderId before retrying"
            ) from exc
        except ReplicationError as exc:
            raise _fail(f"ExchangeNotAvailable: {exc}; nothing was applied") from exc
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.commit_seconds.observe(elapsed)
        for event in outcome.events[:1]:
            _log.info(
                "%s applied", op,
                extra={"request": request, "sequence": event.sequence,
                       "order": getattr(event, "order_id", None), "ms": round(elapsed * 1000, 3)},
            )  # fmt: skip
        return outcome

    @staticmethod
    def _refusal(outcome: Outcome) -> str:
        if outcome.error is not None:
            return outcome.error
        for event in outcome.events:
            if type(event) is OrderRejected:
                return f"{event.error.value}: {event.message}"
        return "ExchangeError: the command was applied without an outcome"

    # -- reads -----------------------------------------------------------------------------

    def _order_json(self, order_id: int) -> Json:
        """The order a write just applied, as the reply to that write."""
        order = self._history.order(order_id)
        if order is None:  # this peer's state went back (an older snapshot) meanwhile
            raise _fail(
                f"RequestTimeout: order {order_id} was applied but is not held here now; "
                "query the order by its clientOrderId before retrying"
            )
        return self._view(order)

    def _view(self, order: Order) -> dict[str, Any]:
        market = self._engine.markets[order.symbol]
        fills = self._history.fills_of_order(order.order_id)
        return order_view(order, market, (self._fill_view(f) for f in fills))

    def _fill_view(self, fill: Fill) -> dict[str, Any]:
        return trade_view(fill.trade, self._engine.markets[fill.trade.symbol], fill.side)

    def _fetch_markets(self, args: list[Any]) -> Json:
        if args:
            raise _fail(f"BadRequest: fetchMarkets takes no arguments, got {len(args)}")
        return [market_view(m) for m in self._engine.markets.values()]

    def _fetch_order(self, args: list[Any]) -> Json:
        query = decode_cancel(self.peer, 0, args, self._engine.markets, "fetchOrder")
        if isinstance(query, RequestError):
            raise _fail(query)
        if query.order_id is not None:
            order = self._history.order(query.order_id)
            named = f"order {query.order_id}"
        else:
            assert query.client_order_id is not None
            order = self._history.order_by_client_id(self.peer, query.client_order_id)
            named = f"order with clientOrderId {query.client_order_id} owned by peer {self.peer}"
        if order is None or (query.symbol is not None and order.symbol != query.symbol):
            in_market = "" if query.symbol is None else f" in {query.symbol}"
            raise _fail(f"OrderNotFound: no {named}{in_market}")
        return self._view(order)

    def _own_orders(self, action: str, args: list[Any], open_orders: bool) -> Json:
        listing = decode_listing(action, args, self._engine.markets, symbol_required=False)
        if isinstance(listing, RequestError):
            raise _fail(listing)
        chosen = self._history.orders_of_owner(
            self.peer, open_orders, listing.symbol, listing.since, listing.limit
        )
        return [self._view(o) for o in chosen]

    def _fetch_open_orders(self, args: list[Any]) -> Json:
        return self._own_orders("fetchOpenOrders", args, True)

    def _fetch_closed_orders(self, args: list[Any]) -> Json:
        return self._own_orders("fetchClosedOrders", args, False)

    def _fetch_order_book(self, args: list[Any]) -> Json:
        decoded = decode_book(args, self._engine.markets)
        if isinstance(decoded, RequestError):
            raise _fail(decoded)
        symbol, limit = decoded
        market, book = self._engine.markets[symbol], self._engine.book(symbol)
        now = _now_ms()

        def levels(side: Any) -> list[list[Any]]:
            return [
                [market.format_price(lv.price), market.format_amount(lv.quantity), lv.count]
                for lv in side.depth(limit)
            ]

        return {
            "symbol": symbol,
            "bids": levels(book.bids),
            "asks": levels(book.asks),
            "timestamp": now,
            "datetime": format_datetime(now),
            "nonce": self._engine.sequence,
        }

    def _fetch_trades(self, args: list[Any]) -> Json:
        listing = decode_listing("fetchTrades", args, self._engine.markets, symbol_required=True)
        if isinstance(listing, RequestError):
            raise _fail(listing)
        assert listing.symbol is not None
        market = self._engine.markets[listing.symbol]
        chosen = self._history.trades(listing.symbol, listing.since, listing.limit)
        return [trade_view(t, market) for t in chosen]

    def _fetch_my_trades(self, args: list[Any]) -> Json:
        listing = decode_listing("fetchMyTrades", args, self._engine.markets, symbol_required=False)
        if isinstance(listing, RequestError):
            raise _fail(listing)
        chosen = self._history.fills_of_owner(
            self.peer, listing.symbol, listing.since, listing.limit
        )
        return [self._fill_view(f) for f in chosen]

    def _fetch_status(self, args: list[Any]) -> Json:
        if args:
            raise _fail(f"BadRequest: fetchStatus takes no arguments, got {len(args)}")
        status = self._status
        return {
            "status": "ok" if status.writable else "maintenance",
            "updated": _now_ms(),
            "info": {
                "peer": self.peer,
                "network": self.network,
                "role": status.role,
                "leader": status.leader,
                "members": status.members,
                "applied": self._engine.sequence,
                "digest": self._engine.digest(),
            },
        }
