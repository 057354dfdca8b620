"""One fault run: a real cluster in network namespaces, clients, a seeded schedule of faults,
then the checker. Needs root (namespaces, nftables).

    python -m tests.nemesis.run [--peers 3] [--duration 60] [--seed N] [--keep DIR]

Prints the seed first and one JSON summary last (the checker's, plus the nemesis log and the
recovery time after each fault); exit status 0 only if every invariant held. A run is
reproduced by its seed (the schedule and the clients' choices; timing is the machine's).
The grape, every peer and the clients each run in their own namespace with their own
address, on a bridge in a namespace of its own; everything is removed at the end, also on
failure, and the processes started are stopped by PID.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peerbook.demo.network import LocalNetwork, PeerProcess
from tests.nemesis.clocks import LIBFAKETIME, ClockFiles, clock_jump, drifted
from tests.nemesis.netns import Fabric, unavailable
from tests.nemesis.unsafe import MODES

FAULTS = ("isolate-leader", "kill-leader", "pause-leader", "isolate-follower", "kill-follower",
          "pause-follower", "one-way-leader", "loss-leader", "flap-leader", "kill-majority",
          "kill-all", "pause-grape", "join-leave", "clock-jump", "clock-rate", "split-leader",
          "stop-grape")  # fmt: skip
"""Fault classes: a partition of the leader or of a follower from every other node (both
ways, only what it sends, or 30 % packet loss; ``flap`` isolates and heals it every second),
kill -9 and restart (the leader, a follower, a majority, every peer at once), SIGSTOP and
SIGCONT (the leader, a follower, the grape), a membership change (a new peer joins
through the grape, as a voter while there are seats, and leaves again with ``peerbook
leave``), a peer's wall clock jumped 90 s to 10 min or run at twice or half speed
(`tests.nemesis.clocks`; skipped, and noted, where libfaketime is not installed), a split of
the network into a minority holding the leader and a majority (two and three of five peers;
with three peers, the leader alone), and the grape stopped (its records lost) for twice a
fault's length, then started again on the same address."""


class Nemesis:
    """Applies faults to the peers and logs them (wall-clock times, like the history)."""

    def __init__(
        self,
        fabric: Fabric,
        network: LocalNetwork,
        root: Path,
        grape: "subprocess.Popen[str]",
        clocks: ClockFiles,
        grape_command: list[str],
    ) -> None:
        self.grape_command = grape_command
        self.fabric = fabric
        self.clocks = clocks
        self.network = network
        self.grape = grape
        self.leader_file = root / "leader"
        self.log: list[dict[str, Any]] = []
        self.departed: list[PeerProcess] = []  # peers that left the network for good

    @property
    def members(self) -> list[PeerProcess]:
        """The peers still in the network (running or not)."""
        return [p for p in self.network.peers if p not in self.departed]

    def _note(self, **event: Any) -> None:
        event["t"] = time.time()
        self.log.append(event)
        print(json.dumps({"nemesis": event}), flush=True)

    def _target(self, fault: str, rng: random.Random) -> PeerProcess:
        leader = self.leader_file.read_text().strip() if self.leader_file.exists() else ""
        peers = self.members
        leaders = [p for p in peers if p.peer == leader]
        if fault.endswith("leader") and leaders:
            return leaders[0]
        others = [p for p in peers if p.peer != leader] or peers
        return rng.choice(others)

    async def apply(self, fault: str, rng: random.Random, length_s: float) -> None:
        if fault == "join-leave":
            await self._join_and_leave(length_s)
            return
        if fault in ("split-leader", "stop-grape"):
            await self._split_or_stop_grape(fault, length_s)
            return
        if fault.startswith("clock") and LIBFAKETIME is None:
            self._note(fault=fault, peer="-", phase="skipped", reason="no libfaketime")
            return
        target = self._target(fault, rng)
        node = f"p{target.index}"
        others = [f"p{p.index}" for p in self.network.peers if p is not target]
        self._note(fault=fault, peer=target.peer, phase="start")
        if fault.startswith(("isolate", "one-way", "loss")):
            self.fabric.isolate(node, [*others, "grape"], one_way=fault.startswith("one-way"),
                                loss_percent=30 if fault.startswith("loss") else 100)  # fmt: skip
            await asyncio.sleep(length_s)
            self.fabric.heal(node)
        elif fault.startswith("flap"):
            deadline = time.monotonic() + length_s
            while time.monotonic() < deadline:
                self.fabric.isolate(node, [*others, "grape"])
                await asyncio.sleep(1.0)
                self.fabric.heal(node)
                await asyncio.sleep(1.0)
        elif fault == "clock-jump":
            spec = clock_jump(rng)
            self._note(fault=fault, peer=target.peer, phase="clock", spec=spec)
            self.clocks.set(target.index, spec)
            await asyncio.sleep(length_s)
            self.clocks.set(target.index, "+0")
        elif fault == "clock-rate":
            rate = rng.choice([2.0, 0.5])
            self._note(fault=fault, peer=target.peer, phase="clock", rate=rate)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < length_s:
                self.clocks.set(target.index, drifted(rate, elapsed))
                await asyncio.sleep(0.5)
            self.clocks.set(target.index, "+0")
        elif fault in ("kill-majority", "kill-all"):
            peers = self.members
            victims = peers if fault == "kill-all" else rng.sample(peers, len(peers) // 2 + 1)
            for victim in victims:
                await self.network.kill(victim)
            await asyncio.sleep(length_s)
            for victim in victims:
                await self.network.restart(victim)
        elif fault.startswith("kill"):
            await self.network.kill(target)
            await asyncio.sleep(length_s)
            await self.network.restart(target)
        else:
            process: Any = self.grape if fault == "pause-grape" else target.process
            process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(length_s)
            process.send_signal(signal.SIGCONT)
        self._note(fault=fault, peer=target.peer, phase="healed")

    async def _split_or_stop_grape(self, fault: str, length_s: float) -> None:
        if fault == "stop-grape":
            self._note(fault=fault, peer="grape", phase="start")
            self.grape.terminate()
            await asyncio.to_thread(self.grape.wait, 10)
            await asyncio.sleep(2 * length_s)
            self.grape = subprocess.Popen(self.grape_command, stdout=subprocess.PIPE, text=True)
            assert self.grape.stdout is not None
            await asyncio.to_thread(self.grape.stdout.readline)
            self._note(fault=fault, peer="grape", phase="healed")
            return
        leader = self.leader_file.read_text().strip() if self.leader_file.exists() else ""
        members = self.members
        ranked = sorted(members, key=lambda p: p.peer != leader)  # the leader first
        minority, majority = ranked[: len(members) // 2], ranked[len(members) // 2 :]
        names = ",".join(p.peer for p in minority)
        self._note(fault=fault, peer=names, phase="start")
        for peer in minority:
            self.fabric.isolate(f"p{peer.index}", [*(f"p{p.index}" for p in majority), "grape"])
        await asyncio.sleep(length_s)
        for peer in minority:
            self.fabric.heal(f"p{peer.index}")
        self._note(fault=fault, peer=names, phase="healed")

    async def _join_and_leave(self, length_s: float) -> None:
        """A new peer joins (in a namespace of its own), follows for ``length_s``, leaves."""
        index = len(self.network.peers) + 1
        self.fabric.add(f"p{index}")
        self._note(fault="join-leave", peer=f"p{index}", phase="start")
        peer = await self.network.add_peer()
        await asyncio.sleep(length_s)
        leave = await asyncio.create_subprocess_exec(
            *self.fabric.command("clients", [sys.executable, "-m", "peerbook", "--grape",
                                 self.network.grape, "--data-dir", str(peer.data_dir), "leave"]),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
        out, err = await leave.communicate()
        self.departed.append(peer)
        exited = None
        if peer.process is not None:
            with contextlib.suppress(TimeoutError):
                exited = await asyncio.wait_for(peer.process.wait(), 20)
        self._note(fault="join-leave", peer=peer.peer, phase="healed",
                   left=leave.returncode == 0 and exited == 0,
                   detail=(out + err).decode(errors="replace")[-300:])  # fmt: skip


def _recovery(history_file: Path, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each fault: acknowledgements during it, how soon writes resumed, the longest
    stretch without any acknowledgement (how long writes stalled), and how soon after healing
    the next one came.

    Writes have resumed once an order first tried after the fault started is acknowledged: a
    leader alive after the fault committed it. An acknowledgement of an earlier attempt
    proves nothing (its entry may have been committed before the fault). The longest stall
    runs to 5 s after the heal, so for a kill it also covers the killed peer's restart."""
    first_tried: dict[tuple[str, str], float] = {}
    acks: list[tuple[float, float]] = []  # (acknowledged at, first tried at)
    for line in history_file.read_text().splitlines():
        event = json.loads(line)
        key = (event["op"], event.get("cid") or event["id"])
        if event["type"] == "invoke":
            first_tried.setdefault(key, event["t"])
        elif event["type"] == "ok":
            acks.append((event["t"], first_tried[key]))
    acks.sort()
    times = [t for t, _ in acks]
    found = []
    starts: dict[str, float] = {}
    for event in log:
        if event["phase"] == "start":
            starts[event["fault"]] = event["t"]
            continue
        if event["phase"] != "healed":  # a clock fault's spec, or a fault skipped
            continue
        started, healed = starts[event["fault"]], event["t"]
        window = [started, *(t for t in times if started <= t <= healed + 5), healed + 5]
        after = [t for t in times if t > healed]
        resumed = next((t for t, tried in acks if tried > started), None)
        found.append({
            "fault": event["fault"], "peer": event["peer"],
            "acks_during": sum(1 for t in times if started <= t <= healed),
            "resumed_s": round(resumed - started, 3) if resumed is not None else None,
            "longest_stall_s": round(max(b - a for a, b in itertools.pairwise(window)), 3),
            "next_ack_after_heal_s": round(after[0] - healed, 3) if after else None,
        })  # fmt: skip
    return found


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    tag = f"pb{os.getpid() % 100000}"
    fabric = Fabric(tag)
    network: LocalNetwork | None = None
    workload: asyncio.subprocess.Process | None = None
    grape: subprocess.Popen[str] | None = None
    nemesis: Nemesis | None = None
    try:
        grape_ip = fabric.add("grape")
        for index in range(1, args.peers + 1):
            fabric.add(f"p{index}")
        fabric.add("clients")
        grape_command = fabric.command("grape", [sys.executable, "-m", "peerbook", "grape",
                                                 "--host", grape_ip, "--port", "30001"])  # fmt: skip
        grape = subprocess.Popen(grape_command, stdout=subprocess.PIPE, text=True)
        assert grape.stdout is not None
        grape_url = grape.stdout.readline().strip()
        program: tuple[str, ...] = (sys.executable, "-m", "peerbook")
        if args.unsafe:
            program = (sys.executable, "-m", "tests.nemesis.unsafe", args.unsafe)
        clocks = ClockFiles(root)
        network = LocalNetwork(root, grape_url, host=lambda i: fabric.addresses[f"p{i}"],
                               launcher=lambda i: ["ip", "netns", "exec", fabric.namespace(f"p{i}"),
                                                   *clocks.environment(i)],
                               program=program,
                               extra_args=("--snapshot-every", str(args.snapshot_every)))  # fmt: skip
        for _ in range(args.peers):
            await network.add_peer()
        config = {
            "grape": grape_url, "network": "main", "seed": args.seed, "clients": args.clients,
            "duration_s": args.duration, "history": str(root / "history.jsonl"),
            "leader_file": str(root / "leader"), "settle_s": args.settle,
            "peers": [{"peer": p.peer, "data_dir": str(p.data_dir)} for p in network.peers],
        }  # fmt: skip
        config_file = root / "config.json"
        config_file.write_text(json.dumps(config))
        workload = await asyncio.create_subprocess_exec(
            *fabric.command("clients", [sys.executable, "-m", "tests.nemesis.workload",
                                        str(config_file)]))  # fmt: skip
        nemesis = Nemesis(fabric, network, root, grape, clocks, grape_command)
        rng = random.Random(args.seed)
        faults = list(args.faults or FAULTS)
        started = time.monotonic()
        await asyncio.sleep(3)
        while time.monotonic() - started < args.duration - 12:
            fault = faults.pop(0) if args.faults else rng.choice(faults)
            if args.faults:
                faults.append(fault)
            await nemesis.apply(fault, rng, rng.uniform(3, 6))
            await asyncio.sleep(rng.uniform(2, 4))
        async with asyncio.timeout(args.duration + 60):
            await workload.wait()
        for peer in nemesis.members:
            fabric.heal(f"p{peer.index}")
            if not peer.running:
                await network.restart(peer)
        checked = subprocess.run(fabric.command("clients", [sys.executable, "-m",
                                 "tests.nemesis.checker", str(config_file)]),
                                 capture_output=True, text=True, check=False,
                                 timeout=600 + args.duration)  # fmt: skip
        if checked.returncode != 0:
            return {"ok": False, "checker_error": checked.stderr[-3000:]}
        summary: dict[str, Any] = json.loads(checked.stdout.splitlines()[-1])
        summary["seed"] = args.seed
        summary["unsafe"] = args.unsafe
        summary["peers"] = args.peers
        summary["faults"] = _recovery(root / "history.jsonl", nemesis.log)
        failed_leaves = [e for e in nemesis.log if e.get("left") is False]
        if failed_leaves:
            summary["ok"] = False
            summary["failed_leaves"] = failed_leaves
        return summary
    finally:
        if workload is not None and workload.returncode is None:
            workload.kill()
            await workload.wait()
        if network is not None:
            await network.stop_all()
        if nemesis is not None:
            grape = nemesis.grape  # a stopped grape was started again
        if grape is not None and grape.poll() is None:
            grape.terminate()
            grape.wait(timeout=10)
        fabric.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="clients per peer")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(10**6))
    parser.add_argument("--faults", nargs="*", choices=FAULTS, help="cycle these (default: random)")
    parser.add_argument("--keep", help="keep the run's files (history, logs) in this directory")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="how long the checker waits for the peers to agree")  # fmt: skip
    parser.add_argument("--snapshot-every", type=int, default=300, metavar="ENTRIES",
                        help="the peers' log compaction interval, small so that faults meet "
                        "snapshots being written, loaded and sent")  # fmt: skip
    parser.add_argument("--unsafe", choices=MODES,
                        help="run deliberately broken peers (a negative control: must fail)")  # fmt: skip
    args = parser.parse_args()
    # SIGTERM (a timeout, an impatient operator) must still clean up namespaces and processes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reason = unavailable()
    if reason is not None:
        print(json.dumps({"skipped": reason}))
        return 0
    print(json.dumps({"seed": args.seed, "peers": args.peers, "duration": args.duration}),
          flush=True)  # fmt: skip
    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True, exist_ok=True)
        summary = asyncio.run(run(args, root))
    else:
        with tempfile.TemporaryDirectory(prefix="peerbook-nemesis-") as directory:
            summary = asyncio.run(run(args, Path(directory)))
    print(json.dumps(summary), flush=True)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
