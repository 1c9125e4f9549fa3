"""The test suite's wall time now against an older commit's, run side by side.

    python -m bench.suite_time [--old ce4f5bc] [--repeats 2] [--out bench/results/suite_time.json]

Each repeat runs both suites, one after the other, in alternating order (old first, then
new first, ...) so that a drift in the machine's load falls on both. The old suite runs
from a `git worktree` of ``--old`` with that tree first on PYTHONPATH (its own subprocess
tests put it there too), and each suite runs as its own pyproject.toml says: `pytest`
with its addopts (at ce4f5bc one process; now pytest-xdist over the cores), plus -rf to
name the tests that failed. Both use this environment's packages. What is reported: every
run's wall seconds, pytest's summary line and failed tests, each suite's median and range,
and the ratio of the medians (new / old) beside the ratio within each repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_suite(tree: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rf"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = [ln for ln in done.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    return {
        "seconds": round(seconds, 1),
        "returncode": done.returncode,
        "summary": lines[-1].strip("= ") if lines else done.stdout[-300:],
        "failed": [ln for ln in done.stdout.splitlines() if ln.startswith("FAILED")],
        "load_before": os.getloadavg()[0],
    }


def _head() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="ce4f5bc", help="commit of the old suite")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/suite_time.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="suite-old-") as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.old],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[dict[str, object]]] = {"old": [], "new": []}
            for i in range(args.repeats):
                order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
                for which in order:
                    result = _run_suite(old_tree if which == "old" else ROOT)
                    runs[which].append(result)
                    print(f"repeat {i + 1} {which}: {result['seconds']} s  {result['summary']}",
                          flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                           check=False, capture_output=True)  # fmt: skip

    def seconds(which: str) -> list[float]:
        return [float(r["seconds"]) for r in runs[which]]  # type: ignore[arg-type]

    old, new = seconds("old"), seconds("new")
    report = {
        "old_commit": args.old,
        "new_commit": _head(),
        "cores": os.cpu_count(),
        "repeats": args.repeats,
        "runs": runs,
        "old_median_s": statistics.median(old),
        "old_range_s": [min(old), max(old)],
        "new_median_s": statistics.median(new),
        "new_range_s": [min(new), max(new)],
        "ratio_of_medians": round(statistics.median(new) / statistics.median(old), 3),
        "ratio_per_repeat": [round(n / o, 3) for n, o in zip(new, old, strict=True)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"old {report['old_median_s']} s (range {report['old_range_s']}), new "
          f"{report['new_median_s']} s (range {report['new_range_s']}): new/old "
          f"{report['ratio_of_medians']} (per repeat {report['ratio_per_repeat']})")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
