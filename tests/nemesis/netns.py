"""Network namespaces on a private bridge: one per peer, per grape and for the clients.

Nothing here touches the host's network: the bridge lives in a namespace of its own, every
address exists only inside the namespaces, and `Fabric.close` deletes every namespace it made
(which deletes their veths and nftables rules). A partition is an nftables table inside a
peer's namespace that drops traffic to and from the given addresses; healing deletes it.
"""

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence

__all__ = ["Fabric", "unavailable"]

_SUBNET = "10.77.0"


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def unavailable() -> str | None:
    """Why namespaces with partitions cannot be made here, or None if they can."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"network namespaces: `{tool}` is not installed"
    probe = "pbprobe"
    try:
        _run("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"network namespaces cannot be created here (not root?): {exc}"
    try:
        _run("ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe")
    except subprocess.CalledProcessError as exc:
        return f"nftables does not work inside a namespace: {exc.stderr!r}"
    finally:
        _run("ip", "netns", "del", probe)
    return None


class Fabric:
    """Namespaces ``{tag}-{name}`` on the bridge namespace ``{tag}-br``."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.addresses: dict[str, str] = {}
        self._made: list[str] = []
        self._bridge_ns = f"{tag}-br"
        self._make(self._bridge_ns)
        self._in(self._bridge_ns, "ip", "link", "add", "br0", "type", "bridge")
        self._in(self._bridge_ns, "ip", "link", "set", "br0", "up")

    def namespace(self, name: str) -> str:
        """The namespace of node ``name``."""
        return f"{self.tag}-{name}"

    def _make(self, namespace: str) -> None:
        _run("ip", "netns", "add", namespace)
        self._made.append(namespace)
        self._in(namespace, "ip", "link", "set", "lo", "up")

    def _in(self, namespace: str, *argv: str) -> None:
        _run("ip", "netns", "exec", namespace, *argv)

    def add(self, name: str) -> str:
        """A namespace for node ``name`` on the bridge; its address."""
        namespace = self.namespace(name)
        index = len(self.addresses) + 2
        address = f"{_SUBNET}.{index}"
        self._make(namespace)
        outer, inner = f"v{self.tag[-6:]}{index}", "eth0"
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", f"{outer}i")
        _run("ip", "link", "set", outer, "netns", self._bridge_ns)
        _run("ip", "link", "set", f"{outer}i", "netns", namespace)
        self._in(namespace, "ip", "link", "set", f"{outer}i", "name", inner)
        self._in(namespace, "ip", "addr", "add", f"{address}/24", "dev", inner)
        self._in(namespace, "ip", "link", "set", inner, "up")
        self._in(self._bridge_ns, "ip", "link", "set", outer, "master", "br0")
        self._in(self._bridge_ns, "ip", "link", "set", outer, "up")
        self.addresses[name] = address
        return address

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside node ``name``'s namespace (the process keeps its own PID)."""
        return ["ip", "netns", "exec", self.namespace(name), *argv]

    def isolate(
        self, name: str, others: Sequence[str], *, one_way: bool = False, loss_percent: int = 100
    ) -> None:
        """Drop traffic between node ``name`` and the nodes ``others``: both ways, or only
        what ``name`` sends (``one_way``); all of it, or ``loss_percent`` of the packets at
        random."""
        addresses = ", ".join(self.addresses[o] for o in others)
        verdict = "drop" if loss_percent >= 100 else f"numgen random mod 100 < {loss_percent} drop"
        incoming = "" if one_way else f" ip saddr {{ {addresses} }} {verdict};"
        script = (
            "table inet partition {\n"
            f"  chain input {{ type filter hook input priority 0; policy accept;{incoming} }}\n"
            "  chain output { type filter hook output priority 0; policy accept;"
            f" ip daddr {{ {addresses} }} {verdict}; }}\n"
            "}\n"
        )
        subprocess.run(["ip", "netns", "exec", self.namespace(name), "nft", "-f", "-"],
                       input=script.encode(), check=True, capture_output=True, timeout=30)  # fmt: skip

    def heal(self, name: str) -> None:
        """Remove node ``name``'s partition, if any."""
        subprocess.run(["ip", "netns", "exec", self.namespace(name), "nft", "delete", "table",
                        "inet", "partition"], capture_output=True, timeout=30, check=False)  # fmt: skip

    def close(self) -> None:
        """Delete every namespace this fabric made (their links and rules go with them),
        after killing whatever still runs in them: the peers' own children outlive a kill
        of the peer (a snapshot writer that hung after its fork, found by the campaign of
        session 12), and only the namespace knows them."""
        for namespace in reversed(self._made):
            found = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True,
                                   text=True, timeout=30, check=False)  # fmt: skip
            for pid in found.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30,
                           check=False)  # fmt: skip
        self._made.clear()
