"""The standard tier: many fault runs, one after another, and one table of what they found.

    sudo python -m tests.nemesis.campaign [--peers 3 5] [--seeds 1 2 3] [--duration 120]
                                          [--min-acked 5000] [--results FILE]

For each peer count and seed it runs `tests.nemesis.run` once per fault group (each group's
classes cycled for the whole run, one fault at a time) and once with every class drawn at
random, so every class is exercised alone and after the others, at every size and seed. Each run's JSON
summary is appended to ``--results`` as it finishes (a campaign stopped half way keeps what
it measured); the table printed at the end is what `docs/reliability.md` records. Exit
status 0 only if every run held every invariant and acknowledged at least ``--min-acked``
orders (a run that spends most of its time with a majority down acknowledges few: the
tier asks for 5,000 a run, which 90 s did not always give).
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.nemesis.run import FAULTS

GROUPS = (
    ("isolate-leader", "kill-leader", "pause-leader"),
    ("isolate-follower", "kill-follower", "pause-follower"),
    ("one-way-leader", "loss-leader", "flap-leader"),
    ("kill-majority", "kill-all", "pause-grape", "join-leave"),
    ("split-leader", "stop-grape", "clock-jump", "clock-rate"),
    (),  # none named: the run draws every fault at random from all classes, by its seed
)

_ROOT = Path(__file__).resolve().parents[2]


def _one(peers: int, seed: int, faults: Iterable[str], duration: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.nemesis.run", "--peers", str(peers),
               "--seed", str(seed), "--duration", str(duration)]  # fmt: skip
    if faults:
        command += ["--faults", *faults]
    started = time.monotonic()
    done = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True,
                          timeout=duration + 900, check=False)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False}
    summary.update(group=list(faults), wall_s=round(time.monotonic() - started, 1))
    if done.returncode != 0:
        summary["ok"] = False
        summary["stderr_tail"] = done.stderr[-2000:]
    return summary


def _row(run: dict[str, Any]) -> str:
    names = run["group"]
    if not names:
        group = f"random from all {len(FAULTS)}"
    elif len(names) > len(GROUPS[0]) + 1:
        group = f"all {len(names)}, cycled"
    else:
        group = ", ".join(names)
    if "skipped" in run:
        return f"| {run['peers']} | {run['seed']} | {group} | skipped: {run['skipped']} |"
    faults = run.get("faults", [])
    stalls = [f["longest_stall_s"] for f in faults]
    after = [f["next_ack_after_heal_s"] for f in faults if f["next_ack_after_heal_s"] is not None]
    cells = [
        run["peers"], run["seed"], group, len(faults), f"{run.get('invoked', 0):,}",
        f"{run.get('acknowledged', 0):,}", run.get("failed_attempts"),
        run.get("unknown_attempts"),
        f"{run.get('unknown_resolved_present')}/{run.get('unknown_resolved_absent')}",
        run.get("lost"), run.get("duplicated"), run.get("phantoms"), run.get("converged"),
        max(stalls, default=0), max(after, default=0), "yes" if run.get("ok") else "**NO**",
    ]  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| peers | seed | faults | faults applied | invoked | acked | failed | unknown | unknown present/absent "
    "| lost | dup | phantom | converged | worst stall s | worst next ack after heal s | ok |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _by_class(runs: list[dict[str, Any]]) -> list[str]:
    """Per fault class and peer count: how often it was applied, how soon writes resumed
    after it started, the longest stall of writes during it (from its start to 5 s after
    healing) and the slowest first acknowledgement after healing, over every run."""
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        for fault in run.get("faults", []):
            found.setdefault((fault["fault"], run["peers"]), []).append(fault)
    lines = ["| fault class | peers | applied | writes resumed after s (median / worst) "
             "| longest stall s (median / worst) | first ack after heal s (worst) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for (fault, peers), faults in sorted(found.items()):
        stalls = sorted(f["longest_stall_s"] for f in faults)
        after = [
            f["next_ack_after_heal_s"] for f in faults if f["next_ack_after_heal_s"] is not None
        ]
        lines.append(f"| {fault} | {peers} | {len(faults)} | {_resumed(faults)} "
                     f"| {stalls[len(stalls) // 2]} / {stalls[-1]} "
                     f"| {max(after, default=0)} |")  # fmt: skip
    return lines


def _resumed(faults: list[dict[str, Any]]) -> str:
    """Median and worst time to the first acknowledgement of an order first tried after the
    fault started; results of runs before this was measured have none."""
    times = sorted(f["resumed_s"] for f in faults if f.get("resumed_s") is not None)
    never = sum(1 for f in faults if "resumed_s" in f and f["resumed_s"] is None)
    if not times:
        return "-" if not never else f"never ({never})"
    text = f"{times[len(times) // 2]} / {times[-1]}"
    return text + (f", never in {never}" if never else "")


def _report(runs: list[dict[str, Any]], min_acked: int) -> int:
    print(HEADER)
    for run in runs:
        print(_row(run))
    print()
    print("\n".join(_by_class(runs)))
    acked = sum(r.get("acknowledged", 0) for r in runs)
    bad = [r for r in runs if not r.get("ok") and "skipped" not in r]
    short = [r for r in runs if "skipped" not in r and r.get("acknowledged", 0) < min_acked]
    print(f"{len(runs)} runs, {acked:,} acknowledged orders, {len(bad)} failed, "
          f"{len(short)} acknowledged fewer than {min_acked:,}")  # fmt: skip
    return 1 if bad or short else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--min-acked", type=int, default=5000,
                        help="fewest acknowledged orders a run must have")  # fmt: skip
    parser.add_argument("--results", default="campaign.jsonl")
    parser.add_argument("--groups", type=int, nargs="+", default=list(range(len(GROUPS))),
                        help="which fault groups, by position (default: all)")  # fmt: skip
    parser.add_argument("--report", action="store_true",
                        help="run nothing: print the tables of the runs in --results")  # fmt: skip
    args = parser.parse_args()
    results = Path(args.results)
    if args.report:
        runs = [json.loads(line) for line in results.read_text().splitlines()]
        return _report(runs, args.min_acked)
    runs = []
    for peers in args.peers:
        for seed in args.seeds:
            for group in (GROUPS[g] for g in args.groups):
                run = _one(peers, seed, group, args.duration)
                run.setdefault("peers", peers)
                run.setdefault("seed", seed)
                with results.open("a") as file:
                    file.write(json.dumps(run) + "\n")
                print(_row(run), flush=True)
                runs.append(run)
    return _report(runs, args.min_acked)


if __name__ == "__main__":
    raise SystemExit(main())
