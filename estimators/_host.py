"""The machine a latency is measured on: the lock that keeps measurements on one machine
apart, and the description of the host recorded with every result and table.

Only one measurement runs at a time per machine: ``latency_lock`` is an ``fcntl`` file
lock in the temp dir that every nasctl process takes before timing anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from search_space import NasctlError

__all__ = ["LatencyError", "LockTimeout", "default_lock_path", "host_info", "latency_lock"]


class LatencyError(NasctlError):
    """Bad latency options (backend, device, threads, counts) or a failed measurement."""


class LockTimeout(LatencyError):
    """Another process held the latency lock for longer than the caller would wait."""


_local = threading.local()


def default_lock_path() -> Path:
    """``$NASCTL_LATENCY_LOCK`` or ``<tempdir>/nasctl-latency.lock``."""
    env = os.environ.get("NASCTL_LATENCY_LOCK")
    return Path(env) if env else Path(tempfile.gettempdir()) / "nasctl-latency.lock"


@contextlib.contextmanager
def latency_lock(path: str | Path | None = None, timeout: float | None = None) -> Iterator[None]:
    """Hold the machine-wide latency lock (re-entrant within a thread).

    ``timeout`` None waits forever; otherwise ``LockTimeout`` after that many seconds."""
    held: dict[str, int] = _local.__dict__.setdefault("held", {})
    lock_path = Path(path) if path is not None else default_lock_path()
    key = str(lock_path)
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another latency measurement held {key} for more than {timeout:g} s"
                    ) from None
                time.sleep(0.02)
        held[key] = 1
        try:
            yield
        finally:
            held[key] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def host_info() -> dict[str, str]:
    """Library versions and the machine, recorded with every result and table."""
    import numpy as np
    import onnxruntime
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": _cpu_name(),
        "cpu_count": str(os.cpu_count() or 0),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
