"""Seeded random command streams shared by the determinism and snapshot tests."""

import random

from peerbook.engine import CancelOrder, Command, OrderType, PlaceOrder, Side, TimeInForce

OWNERS = ("p1", "p2", "p3")


def random_stream(seed: int, length: int) -> list[Command]:
    """A stream of crossing limit and market orders, cancels and a few bad commands."""
    rng = random.Random(seed)
    commands: list[Command] = []
    for index in range(length):
        owner = rng.choice(OWNERS)
        timestamp = 1_700_000_000_000 + index
        roll = rng.random()
        if roll < 0.2 and index:
            commands.append(CancelOrder(owner, timestamp, rng.randint(1, index)))
        elif roll < 0.25:
            side = rng.choice((Side.BUY, Side.SELL))
            commands.append(
                PlaceOrder(
                    owner, timestamp, "BTC/USD", side, OrderType.MARKET, rng.randint(1, 30), None
                )
            )
        else:
            commands.append(
                PlaceOrder(
                    owner,
                    timestamp,
                    rng.choice(("BTC/USD", "ETH/USD")),
                    rng.choice((Side.BUY, Side.SELL)),
                    OrderType.LIMIT,
                    rng.randint(-1, 20),
                    rng.randint(99_990, 100_010),
                    rng.choice(tuple(TimeInForce)),
                    rng.random() < 0.1,
                    f"c{rng.randint(0, length)}" if rng.random() < 0.3 else None,
                )
            )
    return commands
