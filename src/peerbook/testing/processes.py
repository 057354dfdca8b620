"""Stopping a process this program started, by its PID (never by name)."""

import subprocess

__all__ = ["stop_process"]


def stop_process(process: "subprocess.Popen[str]", timeout_s: float = 10.0) -> int | None:
    """SIGTERM ``process`` if it still runs, SIGKILL it if it has not exited within
    ``timeout_s``; its exit status, or None if it outlived even SIGKILL's ``timeout_s``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return None
    return process.returncode
