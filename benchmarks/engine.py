"""Engine benchmark: throughput, per-operation latency and memory of `peerbook.engine.Engine`,
against the same engine without its compiled hot path (`PurePythonEngine`) and the naive
reference matcher `peerbook.testing.reference.ReferenceEngine`.

Run: ``python benchmarks/engine.py`` (the full run: 1,000,000 timed operations per workload,
several minutes), ``python benchmarks/engine.py --quick`` (100,000 operations: a smoke run),
``python benchmarks/engine.py --help`` for the other options (``--seed``, ``--ops``,
``--reference-ops``, ``--reference-deep-ops``, ``--json``, ...).

What it measures, for each workload and each implementation:

* **ops/s**: the median (and min and max) of ``--runs`` (5) runs, each on a fresh engine over
  the same pre-generated command list; the timed loop is only ``apply(command)``.
* **p50 / p99 latency** of one ``apply``, from a separate run that brackets every call with
  ``time.perf_counter_ns`` (that adds overhead of its own, which is why it is a separate run).
* **peak memory**: the peak traced by ``tracemalloc`` over another separate run, in MiB, and
  divided by the orders on record (every order placed, setup included; engines keep every
  order for its life) as bytes per order.
* the **digest**: the engine maintains its digest on every command (it cannot be turned off),
  so every Engine figure includes it; each run's final ``engine.digest()`` is asserted equal
  across runs and to that of the engine that generated the workload, and one is printed.

The workloads, all on BTC/USD (tick 0.1, so prices are integer ticks near 300,000; step
0.0001, so sizes are integer lots), with five owners, generated from a seeded
``random.Random`` before anything is timed:

* **standard**: from an empty book, a mix of 70% passive limit orders (1 to 500 lots, priced
  a few ticks, geometrically distributed, behind the opposite best, so around the mid),
  20% cancels (nine in ten of a random order that is still resting, one in ten of a random
  earlier limit order whatever its state, so usually rejected) and 10% aggressive orders
  (market orders, and GTC or IOC limit orders priced 0 to 2 ticks through the opposite best)
  that cross and fill, often partially. The mid drifts: a hidden fair price random-walks and
  tilts aggressive orders towards it. Aggressive sizes grow when the book is above its target
  size (1,000 resting orders) and shrink below it, so ops/s does not depend on N.
* **deep**: first (untimed) 20,000 resting orders, 200 at each of 50 price levels a side;
  then the same mix with passive orders spread evenly over the 50 levels behind the opposite
  best, a target of 20,000 resting orders, and a fair price that wanders only a few ticks, so
  that the book stays deep. Only the mixed phase is timed; each run starts from a deep copy
  of one engine that applied the setup commands.

The workload's own statistics (trades, cancels accepted and rejected, share of aggressive
orders partly filled, resting orders, levels, drift) are printed with the results.

The generator drives a scratch `Engine` as it goes (to know the best prices and which orders
still rest): the workload depends only on the seed, and an order's id is the sequence number
of the command that placed it, exactly as the engine assigns it.

Where the C module is built, the engine in Python alone runs the whole command list too
(``--no-python`` skips it), with the same digest. The reference matcher scans lists, so it
is much slower on a big book: it runs a prefix of the same command list
(``--reference-ops``, ``--reference-deep-ops``), the Engine is measured on that same prefix
too. The "Engine/this" column divides the Engine's ops/s by the row's, at equal N.

Notes: the garbage collector stays enabled (the engine's own collection cost counts), but
the benchmark's own long-lived objects (the command lists) are moved out of its way with
``gc.freeze``. Timings are wall-clock on a shared machine; compare figures from one run.
"""

import argparse
import copy
import gc
import json
import os
import platform
import random
import statistics
import sys
import textwrap
import time
import tracemalloc
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from peerbook.engine import (
    CancelOrder,
    Command,
    Engine,
    Event,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderRested,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    TradeExecuted,
)
from peerbook.engine.engine import COMPILED, PurePythonEngine
from peerbook.testing.reference import ReferenceEngine

SYMBOL = "BTC/USD"
START_PRICE = 300_000  # ticks of 0.1: 30,000.0 USD
START_TIMESTAMP = 1_764_000_000_000  # ms; each command is 1 ms after the previous one
OWNERS = ("peer-1", "peer-2", "peer-3", "peer-4", "peer-5")
MAX_LOTS = 500  # passive orders are 1..500 lots (0.0001..0.05 BTC)
PASSIVE_SHARE, CANCEL_SHARE = 0.70, 0.20  # the remaining 10% are aggressive orders
STALE_CANCEL_SHARE = 0.10  # of cancels: a random earlier limit order, whatever its state
DRIFT_STEP = 0.05  # chance per command that the hidden fair price moves one tick up or down
SIZE_GAIN, MAX_MAKERS = 10, 50  # aggressive sizes: see _Generator._aggressive
DRIFT_PULL, DRIFT_TILT_MAX = 20, 0.3  # buy share of aggressive orders: 0.5 + (fair - mid) / 20
DEFAULT_SEED = 20_251_125
DEFAULT_OPS, QUICK_OPS = 1_000_000, 100_000


class Matcher(Protocol):
    """What the benchmark needs of an implementation: `Engine.apply`'s signature."""

    def apply(self, command: Command) -> tuple[Event, ...]: ...


@dataclass(frozen=True)
class Profile:
    """How one workload is generated."""

    name: str
    target_resting: int  # aggressive sizes scale so the book stays near this many orders
    offset_mean: float  # passive orders: mean ticks behind the opposite best (geometric)
    max_offset: int  # ... at most this many; uniform over 1..max_offset when offset_mean is 0
    setup_levels: int  # untimed setup: this many levels a side ...
    setup_per_level: int  # ... of this many resting orders each
    drift_band: int  # 0: the fair price walks freely; else it is pulled back within about this


STANDARD = Profile("standard", 1_000, 4.0, 50, 0, 0, 0)
DEEP = Profile("deep", 20_000, 0.0, 50, 50, 200, 50)


@dataclass
class Workload:
    """Commands and what the generator saw when it applied them to its scratch engine."""

    name: str
    setup: list[Command]  # applied before the timed phase, untimed
    commands: list[Command]  # the timed phase
    orders_placed: list[int]  # orders placed by setup plus the first i timed commands, per i
    digest: str  # the scratch engine's digest after setup + commands
    stats: dict[str, float]


@dataclass
class Result:
    """The measurements of one implementation on (a prefix of) one workload."""

    workload: str
    implementation: str
    ops: int
    setup_ops: int
    runs: int
    ops_per_s: list[float]
    ops_per_s_median: float
    ops_per_s_min: float
    ops_per_s_max: float
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    peak_mib: float
    orders_on_record: int
    bytes_per_order: float
    digest: str | None
    trade_count: int | None
    ratio: float | None = None  # Engine ops/s / this row's ops/s at equal N (not on Engine rows)
    seconds: dict[str, float] = field(default_factory=dict)


# -- the workload -------------------------------------------------------------------------------


class _Generator:
    """Writes commands and applies each to a scratch engine, which it reads to price orders
    and pick cancels. Counts what happened for the workload's description."""

    def __init__(self, seed: int, profile: Profile) -> None:
        self.rng = random.Random(seed)
        self.profile = profile
        self.engine = Engine()
        self.book = self.engine.book(SYMBOL)
        self.timestamp = START_TIMESTAMP
        self.mid = self.fair = self.low = self.high = START_PRICE
        self.resting = 0
        self.pool: list[tuple[int, str]] = []  # passive orders not yet seen gone
        self.limits: list[tuple[int, str]] = []  # every limit order placed
        self.placed = 0
        self.counts: dict[str, int] = {}
        self.resting_sum = 0

    def setup(self) -> list[Command]:
        """The deep book: ``setup_per_level`` orders at each of ``setup_levels`` levels a
        side, in random order, so that time priority within a level is random too."""
        profile, rng = self.profile, self.rng
        slots = [
            (side, START_PRICE + sign * level)
            for side, sign in ((Side.BUY, -1), (Side.SELL, 1))
            for level in range(1, profile.setup_levels + 1)
            for _ in range(profile.setup_per_level)
        ]
        rng.shuffle(slots)
        commands: list[Command] = []
        for side, price in slots:
            command = self._limit(side, price, rng.randint(1, MAX_LOTS), passive=True)
            self._apply(command, "setup")
            commands.append(command)
        return commands

    def mix(self, count: int) -> tuple[list[Command], list[int]]:
        """``count`` commands of the 70/20/10 mix, and the orders placed after each."""
        rng = self.rng
        commands: list[Command] = []
        placed_after: list[int] = []
        for _ in range(count):
            if rng.random() < DRIFT_STEP:
                self._drift()
            draw = rng.random()
            command: Command | None = None
            if draw >= PASSIVE_SHARE + CANCEL_SHARE:
                command, kind = self._aggressive(), "aggressive"
            elif draw >= PASSIVE_SHARE:
                command, kind = self._cancel(), "cancel"
            if command is None:
                command, kind = self._passive(), "passive"
            self._apply(command, kind)
            commands.append(command)
            placed_after.append(self.placed)
            self.resting_sum += self.resting
            self.low, self.high = min(self.low, self.mid), max(self.high, self.mid)
        return commands, placed_after

    def _drift(self) -> None:
        """Move the fair price one tick: a free random walk, or with a band an Ehrenfest walk
        (up with chance 1/2 - distance / 2 band), which stays within a few ticks of the
        start (standard deviation sqrt(band / 2)) so that a deep book stays deep."""
        band, up = self.profile.drift_band, 0.5
        if band:
            up -= (self.fair - START_PRICE) / (2 * band)
        self.fair += 1 if self.rng.random() < up else -1

    def _best(self) -> tuple[int | None, int | None]:
        bid, ask = self.book.bids.best(), self.book.asks.best()
        bid_price = None if bid is None else bid.price
        ask_price = None if ask is None else ask.price
        if bid_price is not None and ask_price is not None:
            self.mid = (bid_price + ask_price) // 2
        elif bid_price is not None:
            self.mid = bid_price + 1
        elif ask_price is not None:
            self.mid = ask_price - 1
        return bid_price, ask_price

    def _passive(self) -> Command:
        """A limit order ``offset`` ticks behind the opposite best (or the mid): it never
        crosses, and with offset 1 and a spread of one tick it joins the best level."""
        rng, profile = self.rng, self.profile
        bid, ask = self._best()
        if profile.offset_mean:
            offset = 1 + int(rng.expovariate(1 / (profile.offset_mean - 1)))
            offset = min(offset, profile.max_offset)
        else:
            offset = rng.randint(1, profile.max_offset)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        if side is Side.BUY:
            price = (self.mid + 1 if ask is None else ask) - offset
        else:
            price = (self.mid - 1 if bid is None else bid) + offset
        return self._limit(side, max(price, 1), rng.randint(1, MAX_LOTS), passive=True)

    def _aggressive(self) -> Command:
        """A market order (40%), or a GTC (40%) or IOC (20%) limit order priced 0 to 2 ticks
        through the opposite best; its size grows with the book (see below). It is more
        likely a buy when the mid is below the fair price, and a sell when above, so that the
        mid follows the fair price's random walk."""
        rng = self.rng
        bid, ask = self._best()
        tilt = max(-DRIFT_TILT_MAX, min(DRIFT_TILT_MAX, (self.fair - self.mid) / DRIFT_PULL))
        side = Side.BUY if rng.random() < 0.5 + tilt else Side.SELL
        # About 5 makers filled per aggressive order balance 70% placed against 20% cancelled;
        # more when the book is over its target size, fewer when under.
        excess = self.resting / self.profile.target_resting - 1
        makers = min(MAX_MAKERS, max(0.0, 5.2 * (1 + SIZE_GAIN * excess)))
        amount = rng.randint(1, max(2, int(2 * makers * (MAX_LOTS + 1) / 2)))
        style = rng.random()
        owner = OWNERS[rng.randrange(len(OWNERS))]
        if style < 0.4:
            self.timestamp += 1
            return PlaceOrder(owner, self.timestamp, SYMBOL, side, OrderType.MARKET, amount, None)
        through = rng.randint(0, 2)
        if side is Side.BUY:
            price = (self.mid + 1 if ask is None else ask) + through
        else:
            price = max((self.mid - 1 if bid is None else bid) - through, 1)
        tif = TimeInForce.GTC if style < 0.8 else TimeInForce.IOC
        return self._limit(side, price, amount, passive=False, time_in_force=tif, owner=owner)

    def _cancel(self) -> Command | None:
        """A cancel by its owner of a resting order (or, one time in ten, of any earlier limit
        order); None if there is nothing to cancel."""
        rng, pool = self.rng, self.pool
        if self.limits and rng.random() < STALE_CANCEL_SHARE:
            order_id, owner = self.limits[rng.randrange(len(self.limits))]
            self.timestamp += 1
            return CancelOrder(owner, self.timestamp, order_id)
        while pool:
            index = rng.randrange(len(pool))
            order_id, owner = pool[index]
            pool[index] = pool[-1]
            pool.pop()
            order = self.engine.order(order_id)
            if order is not None and order.is_resting:
                self.timestamp += 1
                return CancelOrder(owner, self.timestamp, order_id)
        return None

    def _limit(
        self,
        side: Side,
        price: int,
        amount: int,
        *,
        passive: bool,
        time_in_force: TimeInForce = TimeInForce.GTC,
        owner: str | None = None,
    ) -> PlaceOrder:
        if owner is None:
            owner = OWNERS[self.rng.randrange(len(OWNERS))]
        order_id = self.engine.sequence + 1  # the id the engine will give it
        self.limits.append((order_id, owner))
        if passive:
            self.pool.append((order_id, owner))
        self.timestamp += 1
        return PlaceOrder(
            owner, self.timestamp, SYMBOL, side, OrderType.LIMIT, amount, price, time_in_force
        )

    def _apply(self, command: Command, kind: str) -> None:
        counts = self.counts
        counts[kind] = counts.get(kind, 0) + 1
        if type(command) is PlaceOrder:
            self.placed += 1
        traded = remainder = False
        for event in self.engine.apply(command):
            name = type(event).__name__
            counts[name] = counts.get(name, 0) + 1
            if type(event) is OrderRested:
                self.resting += 1
            elif type(event) is OrderCancelled:
                self.resting -= 1
            elif type(event) is TradeExecuted:
                traded, remainder = True, event.taker_remaining > 0
                if not event.maker_remaining:
                    self.resting -= 1
            elif type(event) is OrderExpired:
                remainder = True
            elif type(event) is OrderRejected and kind != "cancel":
                raise AssertionError(f"the generator wrote a refused order: {event}")
        if kind == "aggressive":
            counts["aggressive traded"] = counts.get("aggressive traded", 0) + traded
            partial = traded and remainder
            counts["aggressive partial"] = counts.get("aggressive partial", 0) + partial


def make_workload(profile: Profile, ops: int, seed: int) -> Workload:
    """Generate one workload (deterministic in ``seed``)."""
    generator = _Generator(seed, profile)
    setup = generator.setup()
    setup_placed = generator.placed
    generator.counts = {}
    commands, placed_after = generator.mix(ops)
    counts, book = generator.counts, generator.book
    levels = len(book.bids.levels) + len(book.asks.levels)
    cancels = counts.get("cancel", 0)
    aggressive = max(counts.get("aggressive", 0), 1)
    stats: dict[str, float] = {
        "setup orders": setup_placed,
        "passive orders": counts.get("passive", 0),
        "cancels": cancels,
        "cancels accepted": counts.get("OrderCancelled", 0),
        "cancels rejected": counts.get("OrderRejected", 0),
        "aggressive orders": counts.get("aggressive", 0),
        "aggressive that traded %": 100 * counts.get("aggressive traded", 0) / aggressive,
        "aggressive partly filled %": 100 * counts.get("aggressive partial", 0) / aggressive,
        "trades": counts.get("TradeExecuted", 0),
        "expired remainders": counts.get("OrderExpired", 0),
        "mean resting orders": generator.resting_sum / max(ops, 1),
        "resting orders at end": generator.resting,
        "price levels at end": levels,
        "orders per level at end": generator.resting / max(levels, 1),
        "fair price drift (ticks)": generator.fair - START_PRICE,
        "mid drift (ticks)": generator.mid - START_PRICE,
        "mid range (ticks)": generator.high - generator.low,
    }
    return Workload(profile.name, setup, commands, placed_after, generator.engine.digest(), stats)


# -- measuring ----------------------------------------------------------------------------------


def _settle() -> None:
    """Collect garbage, then exempt every object alive now (command lists, prototypes) from
    future collections, so that runs pay only for the collection of their own objects."""
    gc.collect()
    gc.freeze()


def _fresh(factory: Callable[[], Matcher], prototype: Matcher | None) -> Matcher:
    return factory() if prototype is None else copy.deepcopy(prototype)


def _timed_run(matcher: Matcher, commands: Sequence[Command]) -> float:
    apply = matcher.apply
    start = time.perf_counter_ns()
    for command in commands:
        apply(command)
    return (time.perf_counter_ns() - start) / 1e9


def _latency_run(matcher: Matcher, commands: Sequence[Command]) -> "array[int]":
    apply, clock = matcher.apply, time.perf_counter_ns
    samples: array[int] = array("q")
    record = samples.append
    for command in commands:
        start = clock()
        apply(command)
        record(clock() - start)
    return samples


def _memory_run(
    factory: Callable[[], Matcher], prototype: Matcher | None, commands: Sequence[Command]
) -> tuple[int, Matcher]:
    """Peak traced bytes: of the engine's whole state (the setup's included) and everything
    allocated while applying ``commands``; the copying of a prototype is not counted."""
    tracemalloc.start()
    try:
        matcher = _fresh(factory, prototype)
        tracemalloc.reset_peak()  # forget deepcopy's transient memo; keep the state it built
        apply = matcher.apply
        for command in commands:
            apply(command)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, matcher


def _fingerprint(matcher: Matcher) -> tuple[str | None, int | None]:
    digest = matcher.digest() if isinstance(matcher, Engine) else None
    trade_count = getattr(matcher, "trade_count", None)
    return digest, trade_count if isinstance(trade_count, int) else None


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in microseconds."""
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index] / 1e3


def measure(
    implementation: str,
    factory: Callable[[], Matcher],
    workload: Workload,
    ops: int,
    runs: int,
    expected_digest: str | None,
) -> Result:
    """All the measurements of one implementation on the first ``ops`` timed commands."""
    commands = workload.commands[:ops]
    log(f"  {implementation} on {workload.name}, N={ops:,}: ", end="")
    began = time.perf_counter()
    prototype: Matcher | None = None
    if workload.setup:
        prototype = factory()
        for command in workload.setup:
            prototype.apply(command)
    setup_seconds = time.perf_counter() - began
    _settle()
    rates: list[float] = []
    fingerprints: set[tuple[str | None, int | None]] = set()
    for _ in range(runs):
        matcher = _fresh(factory, prototype)
        gc.collect()
        seconds = _timed_run(matcher, commands)
        rates.append(ops / seconds)
        fingerprints.add(_fingerprint(matcher))
        del matcher
        log(f"{rates[-1]:,.0f} ", end="")
    timed_seconds = time.perf_counter() - began - setup_seconds
    matcher = _fresh(factory, prototype)
    gc.collect()
    samples = sorted(_latency_run(matcher, commands))
    fingerprints.add(_fingerprint(matcher))
    del matcher
    gc.collect()
    peak, matcher = _memory_run(factory, prototype, commands)
    fingerprints.add(_fingerprint(matcher))
    del matcher, prototype
    gc.collect()
    gc.unfreeze()
    total_seconds = time.perf_counter() - began
    log(f"ops/s; {total_seconds:.0f} s")
    if len(fingerprints) != 1:
        raise AssertionError(f"{implementation} is not deterministic: {sorted(fingerprints)}")
    ((digest, trade_count),) = fingerprints
    if expected_digest is not None and digest != expected_digest:
        raise AssertionError(f"digest {digest} != the generator's {expected_digest}")
    orders = workload.orders_placed[ops - 1] if ops else 0
    return Result(
        workload=workload.name,
        implementation=implementation,
        ops=ops,
        setup_ops=len(workload.setup),
        runs=runs,
        ops_per_s=rates,
        ops_per_s_median=statistics.median(rates),
        ops_per_s_min=min(rates),
        ops_per_s_max=max(rates),
        p50_us=_percentile(samples, 0.50),
        p99_us=_percentile(samples, 0.99),
        p999_us=_percentile(samples, 0.999),
        max_us=samples[-1] / 1e3,
        peak_mib=peak / 2**20,
        orders_on_record=orders,
        bytes_per_order=peak / max(orders, 1),
        digest=digest,
        trade_count=trade_count,
        seconds={
            "setup": setup_seconds,
            "timed runs": timed_seconds,
            "total": total_seconds,
        },
    )


# -- reporting ----------------------------------------------------------------------------------

_progress = {"quiet": False}


def log(text: str, end: str = "\n") -> None:
    """Progress, on standard error (standard output carries the table or the JSON)."""
    if not _progress["quiet"]:
        print(text, end=end, file=sys.stderr, flush=True)


def _table(results: Sequence[Result]) -> str:
    headers = (
        "workload", "implementation", "N (timed ops)", "ops/s median", "ops/s min",
        "ops/s max", "p50 µs", "p99 µs", "peak MiB", "bytes/order", "Engine/this",
    )  # fmt: skip
    rows = [
        (
            r.workload,
            r.implementation,
            f"{r.ops:,}",
            f"{r.ops_per_s_median:,.0f}",
            f"{r.ops_per_s_min:,.0f}",
            f"{r.ops_per_s_max:,.0f}",
            f"{r.p50_us:,.1f}",
            f"{r.p99_us:,.1f}",
            f"{r.peak_mib:,.1f}",
            f"{r.bytes_per_order:,.0f}",
            "" if r.ratio is None else f"{r.ratio:,.1f}x",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    left = {0, 1}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _describe(workload: Workload, seed: int) -> str:
    def show(name: str, value: float) -> str:
        digits = 1 if isinstance(value, float) and not value.is_integer() else 0
        if name.endswith(" %"):
            return f"{name[:-2]}: {value:,.{digits}f}%"
        return f"{name}: {value:,.{digits}f}"

    text = "; ".join(show(name, value) for name, value in workload.stats.items())
    head = f"{workload.name} workload (seed {seed}, {len(workload.commands):,} timed ops): "
    return textwrap.fill(head + text, width=100, subsequent_indent="    ")


def _machine() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "load average": " ".join(f"{x:.2f}" for x in load),
    }


# -- main ---------------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput, latency and memory of the matching engine and the reference.",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="workload seed")
    parser.add_argument(
        "--ops", type=int, default=None, help=f"timed operations per workload ({DEFAULT_OPS:,})"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: --ops {QUICK_OPS:,} unless given"
    )
    parser.add_argument(
        "--reference-ops",
        type=int,
        default=None,
        help="operations for the reference on the standard workload (10,000; quick: 2,000)",
    )
    parser.add_argument(
        "--reference-deep-ops",
        type=int,
        default=None,
        help="operations for the reference on the deep workload (300; quick: 100)",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the reference")
    parser.add_argument(
        "--no-python", action="store_true", help="skip the engine without its compiled path"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs for the median (5)")
    parser.add_argument(
        "--workload",
        choices=("all", STANDARD.name, DEEP.name),
        default="all",
        help="which workloads to run (all)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    parser.add_argument("--json-file", metavar="PATH", help="also write the JSON results to PATH")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")
    args = parser.parse_args(argv)
    if args.ops is None:
        args.ops = QUICK_OPS if args.quick else DEFAULT_OPS
    if args.reference_ops is None:
        args.reference_ops = 2_000 if args.quick else 10_000
    if args.reference_deep_ops is None:
        args.reference_deep_ops = 100 if args.quick else 300
    if args.ops < 1 or args.runs < 1:
        parser.error("--ops and --runs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the workloads, measure, print the table (or JSON)."""
    args = _parse(argv)
    _progress["quiet"] = args.quiet
    machine = _machine()
    started = time.perf_counter()
    profiles = [p for p in (STANDARD, DEEP) if args.workload in ("all", p.name)]
    log(f"seed {args.seed}; {args.ops:,} timed ops per workload; {args.runs} runs; {machine}")
    results: list[Result] = []
    workloads: list[Workload] = []
    for profile in profiles:
        began = time.perf_counter()
        workload = make_workload(profile, args.ops, args.seed)
        workloads.append(workload)
        log(f"generated {_describe(workload, args.seed)} [{time.perf_counter() - began:.0f} s]")
        _settle()
        engine = measure("Engine", Engine, workload, args.ops, args.runs, workload.digest)
        results.append(engine)
        if COMPILED and not args.no_python:
            python = measure(
                "Python only", PurePythonEngine, workload, args.ops, args.runs, workload.digest
            )
            python.ratio = engine.ops_per_s_median / python.ops_per_s_median
            results.append(python)
        if args.no_reference:
            continue
        small = args.reference_deep_ops if workload.setup else args.reference_ops
        small = min(small, args.ops)
        engine_small = engine
        if small != args.ops:
            engine_small = measure("Engine", Engine, workload, small, args.runs, None)
            results.append(engine_small)
        reference = measure("Reference", ReferenceEngine, workload, small, args.runs, None)
        reference.ratio = engine_small.ops_per_s_median / reference.ops_per_s_median
        results.append(reference)
        if reference.trade_count != engine_small.trade_count:
            log(
                f"WARNING: on {workload.name} N={small:,} the reference made "
                f"{reference.trade_count} trades and the engine {engine_small.trade_count}"
            )
        del workload
        gc.unfreeze()
    elapsed = time.perf_counter() - started
    machine["load average at end"] = _machine()["load average"]
    document = json.dumps(
        {
            "seed": args.seed,
            "ops": args.ops,
            "runs": args.runs,
            "machine": machine,
            "wall seconds": elapsed,
            "workloads": {
                w.name: {
                    "setup_ops": len(w.setup),
                    "timed_ops": len(w.commands),
                    "digest": w.digest,
                    "stats": w.stats,
                }
                for w in workloads
            },
            "results": [asdict(r) for r in results],
        },
        indent=2,
    )
    if args.json_file:
        with open(args.json_file, "w", encoding="utf-8") as file:
            file.write(document + "\n")
    if args.json:
        print(document)
        return
    print(f"seed {args.seed} (--seed to change); {machine['python']}; {machine['platform']}")
    print(
        f"{machine['cpus']} CPUs, load average {machine['load average']} at start, "
        f"{machine['load average at end']} at end; wall time {elapsed:.0f} s"
    )
    print()
    for workload in workloads:
        print(_describe(workload, args.seed))
        print(f"  {workload.name} digest (Engine, all runs equal): {workload.digest}")
    print()
    print(_table(results))
    print()
    print(
        f"ops/s: median, min and max of {args.runs} runs, each on a fresh engine; the deep "
        f"workload's setup ({DEEP.setup_levels * DEEP.setup_per_level * 2:,} resting orders) "
        "is untimed.\n"
        "p50/p99: per-apply latency from a separate run timing each call with "
        "perf_counter_ns (adds its own overhead).\n"
        "peak MiB: tracemalloc peak in a separate run (state + transient allocations); "
        "bytes/order = peak / orders on record (setup included).\n"
        "Python only: the Engine without its compiled hot path (PurePythonEngine).\n"
        "Engine/this: the Engine's ops/s over this row's, on the same first N operations.\n"
        "The Engine maintains its digest on every command: all its figures include it."
    )


if __name__ == "__main__":
    main()
