"""`python -m nasctl` (or `python -c CODE`, `python SCRIPT`) as a process of its own,
without paying for a new interpreter each time.

The worker, kill and interrupt tests need real processes: two workers writing one journal,
a SIGKILL in the middle of a trial, a Ctrl-C. Each `python -m nasctl search` spends about
6 CPU-seconds importing (torch 2 s, torch._dynamo 1.7 s on the first optimizer, matplotlib
0.9 s, from `python -X importtime` of a 4-trial search) before it trains for one. Here the
imports are done once per test process, in a multiprocessing fork server: a fresh
interpreter started from the same environment that imports the libraries nasctl imports
and nothing else (no pytest, no monkeypatch, no captured streams). Each process is forked
from it, so it is still a process of its own (its own pid, file handles, signals and exit
status), run with the arguments, working folder and environment the test gives, and
exiting as `python` does: SystemExit's code, 1 for an uncaught exception (its traceback
after a "Process ForkServerProcess-N:" line that python would not print), killed by SIGINT
for an uncaught Ctrl-C. What it does not repeat is the interpreter start: a new
interpreter's `python -m nasctl` is still run by the fuzz test's first worst case, and `python
-I` by the export test that needs torch alone.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What the fork server imports before forking: what a training `nasctl search` imports.
PRELOAD = ["torch", "torch._dynamo", "optuna", "matplotlib.pyplot", "nasctl.cli", "results",
           "estimators", "search_space", "tests.processes"]  # fmt: skip

_context = multiprocessing.get_context("forkserver")


def _server_running() -> None:
    """Start the fork server once, with the repository on its path (this module is what
    each child runs first)."""
    if getattr(_server_running, "done", False):
        return
    _context.set_forkserver_preload(PRELOAD)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), before) if p)
    try:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    _server_running.done = True  # type: ignore[attr-defined]


def _child(args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """Runs in the forked process: `python ARGS` for ARGS = -m MODULE ..., -c CODE ... or
    SCRIPT ..., with what each puts first on sys.path."""
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(handle, fd)
        os.close(handle)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import runpy

    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            sys.path.insert(0, cwd)
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path.insert(0, "")
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = list(args)
            sys.path.insert(0, str(Path(args[0]).resolve().parent))
            runpy.run_path(args[0], run_name="__main__")
    except KeyboardInterrupt:
        # Python's own exit for an uncaught Ctrl-C: die of SIGINT.
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        atexit._run_exitfuncs()


_started: list[PythonProcess] = []


def _kill_leftovers() -> None:
    """At the test process's exit, kill what is still running (a test that failed before
    waiting for its process): multiprocessing would otherwise wait for each to end."""
    for proc in _started:
        if proc.poll() is None:
            proc.kill()


class PythonProcess:
    """A running `python ARGS`, with the part of subprocess.Popen's interface the tests use."""

    def __init__(self, args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
        _server_running()
        self._dir = tempfile.TemporaryDirectory(prefix="nasctl-proc-")
        self._out = Path(self._dir.name) / "stdout"
        self._err = Path(self._dir.name) / "stderr"
        self._out.touch()
        self._err.touch()
        self._process = _context.Process(
            target=_child, args=([*args], str(cwd), dict(env), str(self._out), str(self._err))
        )
        self._process.start()
        if not _started:
            atexit.register(_kill_leftovers)  # after multiprocessing's: runs before it
        _started.append(self)
        self.pid = self._process.pid
        self.args = list(args)

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
            raise subprocess.TimeoutExpired(["python", *self.args], timeout or 0.0)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        out, err = self._out.read_text(), self._err.read_text()
        self._dir.cleanup()
        return out, err


def start_python(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> PythonProcess:
    """`python ARGS` (-m MODULE ..., -c CODE ... or SCRIPT ...) started in ``cwd`` with
    ``env`` (default: this process's)."""
    return PythonProcess(args, cwd, os.environ if env is None else env)


def run_python(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` run to its end, as subprocess.run(..., capture_output=True, text=True)."""
    started = time.monotonic()
    proc = start_python(args, cwd, env)
    out, err = proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - started)))
    return subprocess.CompletedProcess(["python", *args], proc.wait(), out, err)


def start_nasctl(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> PythonProcess:
    """`python -m nasctl ARGS`."""
    return start_python(["-m", "nasctl", *args], cwd, env)


def run_nasctl(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m nasctl ARGS` run to its end."""
    return run_python(["-m", "nasctl", *args], cwd, env, timeout)
