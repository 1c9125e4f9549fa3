"""A fuzz table over every command: each bad invocation exits 2 with one line on stderr,
no traceback, within a second or two, and writes nothing.

Generated, not hand-picked: every number option of every command gets zero (where zero
is wrong), negative, NaN, infinite, huge and non-ASCII values; every option or argument
that reads a file gets random bytes, an empty file, a directory, JSON that is not the
expected object, nesting deep enough to exhaust the parser, and a missing path; every
option that names an output gets a place nothing can be written (/proc), a path under a
regular file, and a file where a folder goes (or the reverse); ARCH gets absurd arch
strings. A case that started real work (a measurement, a training run) would take
seconds and fail the time limit; one that wrote anything fails the listing check.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nasctl.cli import app
from search_space import build_model, parse_arch
from tests.processes import run_nasctl

runner = CliRunner()
TINY = "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0"
#: A validation failure takes milliseconds; this leaves room for a loaded 2-core machine.
LIMIT_S = 3.0
#: A case still running after this is a hang (SIGALRM ends it as a failure).
HANG_S = 30

# --- inputs: every kind of unreadable file, referred to as @name in the table ---------

GARBAGE = {
    "rand": bytes((i * 7919 + 13) % 256 for i in range(512)),  # not UTF-8 from byte 0
    "empty": b"",
    "list": b"[1, 2, 3]\n",  # JSON, but not an object
    "obj": b'{"format": 3, "space": [], "entries": "x"}\n',  # an object of the wrong shape
    "deep": b"[" * 200_000,  # exhausts a recursive parser
    "text": "r\u00e9sum\u00e9 \u2603 \x00 not a model\n".encode(),
}
#: Garbage kinds plus a directory and a missing path: what a file option is fed.
BAD_FILES = [*GARBAGE, "dir", "missing"]


def _write_inputs(root: Path) -> None:
    for name, data in GARBAGE.items():
        (root / f"{name}.bin").write_bytes(data)
        (root / f"{name}.journal").write_bytes(data)  # --storage takes a .journal path
    (root / "dir.bin").mkdir()
    (root / "dir.journal").mkdir()
    (root / "file").write_text("a regular file\n")
    (root / "out.png").mkdir()  # a directory where a file goes
    torch.save(build_model(parse_arch(TINY)).state_dict(), root / "tiny.pt")
    Image.new("RGB", (40, 40), (90, 120, 30)).save(root / "img.png")


def _path(root: Path, token: str) -> str:
    """@rand -> ROOT/rand.bin, @rand.journal -> ROOT/rand.journal, @file/x -> ROOT/file/x
    (@missing names a file that is not there)."""
    if not token.startswith("@"):
        return token
    head, _, rest = token[1:].partition("/")
    if "." not in head and head != "file":
        head += ".bin"
    return str(root / head / rest) if rest else str(root / head)


# --- the table -------------------------------------------------------------------------

COUNT, SEED, FLOAT, FLOAT0, THREADS = "count", "seed", "float", "float0", "threads"
HUGE = str(10**30)
#: Bad values of each kind of number. COUNT and FLOAT must be positive (0 is wrong);
#: SEED and FLOAT0 may be 0. Non-ASCII digits look like numbers to str.isdigit().
BAD_VALUES = {
    COUNT: ["0", "-1", HUGE, "nan", "\u0663"],
    SEED: ["-1", HUGE, "\uff17"],
    FLOAT: ["0", "-1", "nan", "inf", "\u00e9"],
    FLOAT0: ["-1", "nan", "1e999", "\u00bd"],
    THREADS: ["0", "-1", "100000", "nan"],
}

#: Per command: the rest of a valid invocation, and its number options. With zero the
#: command must reach its own check, so the base must be good otherwise; a base that
#: already fails (no study, a garbage file) marks zero as not exercised (None).
NUMBERS: list[tuple[list[str], list[tuple[str, str]], bool]] = [
    (["arch", "show", "mobilenet_v2"],
     [("-w", FLOAT), ("-r", COUNT), ("--num-classes", COUNT)], True),
    (["arch", "plot", "mobilenet_v2", "--out", "a.png"],
     [("-w", FLOAT), ("-r", COUNT), ("--num-classes", COUNT)], True),
    (["table", "mobilenet_v2"], [("-w", FLOAT), ("-r", COUNT), ("--num-classes", COUNT)], True),
    (["latency", "mobilenet_v2"],
     [("--threads", THREADS), ("--rounds", COUNT), ("--repeats", COUNT), ("-w", FLOAT),
      ("-r", COUNT), ("--num-classes", COUNT)], True),
    (["latency", TINY, "--backend", "onnxruntime"], [("--threads", THREADS)], True),
    (["lut", "build", "-o", "t.json"],
     [("--threads", THREADS), ("--num-classes", COUNT), ("-r", COUNT), ("--rounds", COUNT),
      ("--repeats", COUNT)], True),
    (["lut", "validate", "--lut", "@rand"],
     [("--n", COUNT), ("--seed", SEED), ("--passes", COUNT)], False),
    (["export", "mobilenet_v2", "-f", "onnx", "-o", "e.onnx"],
     [("-w", FLOAT), ("-r", COUNT), ("--num-classes", COUNT), ("--seed", SEED),
      ("--opset", COUNT), ("--tolerance", FLOAT), ("--threads", THREADS)], True),
    (["export", "-f", "json", "-o", "e.json", "--study", "s", "--runs", "runs"],
     [("--trial", SEED), ("--best-under", FLOAT)], False),
    (["train", TINY, "--out", "tr"],
     [("--epochs", COUNT), ("-r", COUNT), ("--batch-size", COUNT), ("--lr", FLOAT),
      ("--seed", SEED), ("--threads", THREADS)], True),
    (["train", "mobilenet_v2", "--out", "tr"], [("--width", FLOAT)], True),
    (["eval", "mobilenet_v2", "--checkpoint", "@rand"], [("--width", FLOAT)], False),
    (["search", "--runs", "runs"],
     [("--trials", COUNT), ("--timeout", FLOAT), ("--population", COUNT), ("--seed", SEED),
      ("--epochs", COUNT), ("--images", COUNT), ("--batch-size", COUNT),
      ("--baseline-resolution", COUNT), ("--threads", THREADS), ("--latency-threads", THREADS),
      ("--max-latency", FLOAT), ("--max-flops", FLOAT), ("--max-params", FLOAT)], True),
    (["search", "--runs", "runs", "--accuracy", "halving"],
     [("--eta", COUNT), ("--min-fidelity", FLOAT)], True),
    (["compare", "--runs", "runs"],
     [("--top", COUNT), ("--under-latency", FLOAT), ("--epochs", COUNT), ("--images", COUNT),
      ("--batch-size", COUNT), ("--baseline-width", FLOAT), ("--baseline-resolution", COUNT),
      ("--seed", SEED), ("--threads", THREADS), ("--latency-threads", THREADS),
      ("--latency-rounds", COUNT), ("--latency-runs", COUNT)], False),
    (["supernet", "train", "--out", "s.pt"],
     [("--epochs", COUNT), ("--batch-size", COUNT), ("--lr", FLOAT),
      ("--random-subnets", SEED), ("--train-images", COUNT), ("--seed", SEED),
      ("--threads", THREADS), ("--save-every", FLOAT)], True),
    (["supernet", "score", "mobilenet_v2", "--supernet", "@rand"],
     [("-r", COUNT), ("--width", FLOAT), ("--recal-batches", COUNT), ("--val-images", COUNT),
      ("--seed", SEED), ("--threads", THREADS)], False),
    (["visualize", TINY, "--checkpoint", "@tiny.pt", "--image", "@img.png", "--out", "v"],
     [("--maps", COUNT), ("-r", COUNT), ("--num-classes", COUNT)], True),
]  # fmt: skip

#: Where each command reads a file: the invocation with FILE in the file's place.
FILE_SLOTS: list[list[str]] = [
    ["arch", "show", "FILE"],
    ["arch", "plot", "FILE", "--out", "a.png"],
    ["arch", "plot", "mobilenet_v2", "--out", "a.png", "--lut", "FILE"],
    ["space", "show", "--space", "FILE"],
    ["table", "FILE"],
    ["latency", "FILE"],
    ["latency", TINY, "--reference", "FILE"],
    ["lut", "build", "-o", "t.json", "--space", "FILE"],
    ["lut", "validate", "--lut", "FILE"],
    ["export", "FILE", "-f", "json", "-o", "e.json"],
    ["export", TINY, "-f", "pt", "-o", "e", "--checkpoint", "FILE"],
    ["export", "-f", "pt", "-o", "e", "--checkpoint", "FILE"],
    ["train", "FILE", "--out", "tr"],
    ["train", TINY, "--out", "tr", "--data", "FILE"],
    ["eval", TINY, "--checkpoint", "FILE"],
    ["search", "--runs", "runs", "--space", "FILE"],
    ["search", "--runs", "runs", "--latency", "lut", "--lut", "FILE"],
    ["search", "--runs", "runs", "--accuracy", "supernet", "--supernet", "FILE"],
    ["search", "--runs", "runs", "--data", "FILE"],
    ["supernet", "train", "--out", "s.pt", "--space", "FILE"],
    ["supernet", "train", "--out", "s.pt", "--data", "FILE"],
    ["supernet", "score", "mobilenet_v2", "--supernet", "FILE"],
    ["supernet", "score", "FILE", "--supernet", "@rand"],
    ["visualize", TINY, "--checkpoint", "FILE", "--image", "@img.png", "--out", "v"],
    ["visualize", TINY, "--checkpoint", "@tiny.pt", "--image", "FILE", "--out", "v"],
]
#: Storage files (Optuna journals) are read by these; FILE becomes @KIND.journal.
STORAGE_SLOTS: list[list[str]] = [
    ["results", "show", "--storage", "FILE"],
    ["results", "pareto", "--storage", "FILE"],
    ["results", "plot", "--storage", "FILE", "--out", "p.png"],
    ["compare", "--storage", "FILE"],
    ["export", "-f", "json", "-o", "e.json", "--study", "search", "--storage", "FILE"],
]
#: Outputs nothing can be written to: /proc, under a regular file, a file for a folder
#: and a folder for a file.
OUTPUTS: list[list[str]] = [
    *[
        ["search", "--runs", bad]
        for bad in ("/proc/nasctl-runs", "@file/runs", "@file", "/proc/self/x/y")
    ],
    ["search", "--storage", "/proc/nasctl.journal"],
    ["search", "--storage", "@file/s.journal"],
    *[["train", TINY, "--out", bad] for bad in ("/proc/nasctl-tr", "@file/tr", "@file")],
    *[["lut", "build", "-o", bad] for bad in ("/proc/x.json", "@file/t.json", "@dir")],
    *[
        ["export", TINY, "-f", "onnx", "-o", bad]
        for bad in ("/proc/x.onnx", "@file/e.onnx", "/dev/null/e.onnx")
    ],
    *[["export", TINY, "-f", "pt", "-o", bad] for bad in ("/proc/e", "@file/e")],
    *[["arch", "plot", TINY, "--out", bad] for bad in ("/proc/a.png", "@file/a.png", "@out.png")],
    *[["supernet", "train", "--out", bad] for bad in ("/proc/s.pt", "@file/s.pt", "@dir")],
    *[
        ["visualize", TINY, "--checkpoint", "@tiny.pt", "--image", "@img.png", "--out", bad]
        for bad in ("/proc/v", "@file/v", "@file")
    ],
    ["results", "plot", "--out", "/proc/p.png"],
    ["compare", "--runs", "/proc/runs"],
]
#: Arch strings no network has, for every command that takes ARCH.
ABSURD_ARCHS = [
    "",
    ",",
    "r0_n0",
    "r32_n10",
    "r32_n10,stem_k3_s2_c8_re,head_d0",
    "r100000000_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0",
    "r32_n0,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0",
    "r32_n99999999,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0",
    "r32_n10,stem_k3_s2_c99999999_re,ir_k3_s2_c8_re,head_d0",
    "r32_n10,stem_k99999_s2_c8_re,ir_k3_s2_c8_re,head_d0",
    "r32_n10,stem_k4_s2_c8_re,ir_k3_s2_c8_re,head_d0",
    "r32_n10,stem_k3_s3_c8_re,ir_k3_s2_c8_re,head_d0",
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_enan_re,head_d0",
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_e1e308_re,head_d0",
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_e0_re,head_d0",
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_se2_re,head_d0",
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d1.5",
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_c99999999_re_d0",
    "r\uff13\uff12_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0",  # full-width digits
    "r32_n10,stem_k3_s2_c\u0668_re,ir_k3_s2_c8_re,head_d0",  # an Arabic-Indic eight
    "r32_n10,stem_k3_s2_c8_\u00e9,ir_k3_s2_c8_re,head_d0",
    "r32_n10,stem_k3_s2_c8_re," + "ir_k3_s1_c8_re," * 5000 + "head_d0",
    "r8_n10,stem_k3_s2_c8_re,ir_k3_s2_c8_re,ir_k3_s2_c8_re,ir_k3_s2_c8_re,head_d0",
]
GROUPS = ("arch", "lut", "results", "space", "supernet")
ARCH_SLOTS: list[list[str]] = [
    ["arch", "show", "ARCH"],
    ["latency", "ARCH"],
    ["export", "ARCH", "-f", "onnx", "-o", "e.onnx"],
]


def _name(args: list[str]) -> str:
    """The command of an invocation: ``search``, ``lut build``."""
    return " ".join(args[:2]) if args[0] in GROUPS else args[0]


def _cases() -> Iterator[tuple[str, list[str]]]:
    for base, options, zero_reached in NUMBERS:
        for flag, kind in options:
            for value in BAD_VALUES[kind]:
                if value == "0" and kind != THREADS and not zero_reached:
                    continue
                yield f"{_name(base)} {flag}={value}", [*base, flag, value]
    for slot in FILE_SLOTS:
        at = slot.index("FILE")
        where = slot[at - 1] if slot[at - 1].startswith("-") else "ARCH"
        for kind in BAD_FILES:
            yield f"{_name(slot)} {where}=@{kind}", [f"@{kind}" if a == "FILE" else a for a in slot]
    for slot in STORAGE_SLOTS:
        for kind in BAD_FILES:
            args = [f"@{kind}.journal" if a == "FILE" else a for a in slot]
            yield f"{_name(slot)} --storage=@{kind}.journal", args
    for args in OUTPUTS:
        yield f"{_name(args)} {args[-2]}={args[-1]}", args
    for slot in ARCH_SLOTS:
        for i, arch in enumerate(ABSURD_ARCHS):
            yield f"{_name(slot)} absurd-arch-{i}", [arch if a == "ARCH" else a for a in slot]


CASES = list(_cases())


def test_the_table_is_wide() -> None:
    commands = {(a[0], a[1] if a[0] in GROUPS else "") for _, a in CASES}
    top = {c[0] for c in commands}
    assert len(CASES) >= 200
    assert top >= {"arch", "compare", "eval", "export", "latency", "lut", "results", "search",
                   "space", "supernet", "table", "train", "visualize"}  # fmt: skip
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"{len(CASES)} bad invocations over all {len(commands)} commands" in readme
    groups = {c for c in commands if c[0] in GROUPS}
    assert groups >= {("arch", "show"), ("arch", "plot"), ("lut", "build"),
                      ("lut", "validate"), ("results", "show"), ("results", "pareto"),
                      ("results", "plot"), ("space", "show"), ("supernet", "train"),
                      ("supernet", "score")}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    _write_inputs(root)
    # Import what the commands import lazily, so that the time limit measures the command.
    for module in ("optuna", "onnxruntime", "matplotlib.pyplot", "results._search",
                   "results._export", "results._compare", "results._visualize",
                   "results._archplot", "estimators"):  # fmt: skip
        importlib.import_module(module)
    return root


def _listing(root: Path) -> set[tuple[str, int]]:
    return {
        (str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    }


class _Hang(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang(f"still running after {HANG_S} s")


@pytest.mark.parametrize("args", [a for _, a in CASES], ids=[i for i, _ in CASES])
def test_bad_invocation_is_one_line_exit_2_and_writes_nothing(
    args: list[str], inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cache = tmp_path / "cache"
    monkeypatch.setenv("NASCTL_CACHE", str(cache))
    before = _listing(inputs)
    argv = [_path(inputs, a) for a in args]
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HANG_S)
    started = time.perf_counter()
    try:
        result = runner.invoke(app, argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - started
    output = result.output + (result.stderr or "")
    assert not isinstance(result.exception, _Hang), f"hang: {argv}"
    assert "Traceback" not in output and not (
        result.exception and not isinstance(result.exception, SystemExit)
    ), f"{argv}: {result.exception!r}\n{output}"
    assert result.exit_code == 2, f"{argv}: exit {result.exit_code}\n{output}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{argv}: {result.stderr}"
    assert elapsed < LIMIT_S, f"{argv} took {elapsed:.1f} s: it started real work"
    assert not any(work.iterdir()), f"{argv} wrote {sorted(p.name for p in work.iterdir())}"
    assert not cache.exists(), f"{argv} wrote the cache"
    assert _listing(inputs) == before, f"{argv} changed the input files"


# --- the worst ones in a real process: a crash would be a signal, not exit 2 --------------

WORST = [
    ["latency", TINY, "--backend", "onnxruntime", "--threads", "100000"],
    ["export", TINY, "-f", "onnx", "-o", "e.onnx", "--threads", "100000"],
    ["lut", "validate", "--lut", "@rand"],
    ["export", TINY, "-f", "pt", "-o", "e", "--checkpoint", "@empty"],
    ["search", "--runs", "/proc/nasctl-runs"],
    ["search", "--runs", "runs", "--threads", "0"],
    ["table", "mobilenet_v2", "-r", "100000000"],
]


def test_worst_cases_in_a_real_process(inputs: Path, tmp_path: Path) -> None:
    """Each in a process of its own (forked from a server that has done the imports:
    tests/processes.py), the first also through a new interpreter's `python -m nasctl`."""
    env = {**os.environ, "NASCTL_CACHE": str(tmp_path / "cache")}
    first = [sys.executable, "-m", "nasctl", *(_path(inputs, a) for a in WORST[0])]
    runs = [subprocess.run(first, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)]  # fmt: skip
    runs += [run_nasctl([_path(inputs, a) for a in args], tmp_path, env, timeout=120)
             for args in WORST]  # fmt: skip
    for args, done in zip([WORST[0], *WORST], runs, strict=True):
        assert done.returncode == 2, f"{args}: {done.returncode} (a negative code is a signal)"
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
