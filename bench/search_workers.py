"""Search throughput with 1 and 2 `nasctl search` workers on this machine, as a ratio.

    flock /tmp/nasctl-heavy.lock python -m bench.search_workers [--trials 10] [--repeats 3]

Each run starts N real worker processes on one fresh study (a shared journal file), a
small fixed space and fidelity (digits at 32x32, 2,876 training images = 2 epochs,
batch 32, random sampler, MACs target: no latency timing, no baselines), and the default
--threads, which splits this machine's cores between the live workers. Trials per hour =
finished trials / wall time from the first start to the last exit (process start-up
included), and over the search alone (first trial start to last trial end). Runs
alternate 1, 2, 1, 2, ... so drift from other jobs hits both alike.
Writes bench/results/search_workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from results._study import open_storage
from search_space import builtin_space_text

ROOT = Path(__file__).resolve().parents[1]

#: The built-in tiny space: 144 architectures that train in about a second.
SPACE = builtin_space_text("tiny")


def run(workers: int, trials: int, images: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.toml"
        space.write_text(SPACE)
        cmd = [sys.executable, "-m", "nasctl", "search", "--target", "flops", "--space",
               str(space), "--out", tmp, "--study", "b", "--trials", str(trials),
               "--no-baselines", "--images", str(images), "--batch-size", "32", "--sampler",
               "random", "--seed", str(seed)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            for _ in range(workers)
        ]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"worker failed: {err.strip().splitlines()[-1:]}")
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name="b", storage=open_storage(None, Path(tmp), "b"))
        complete = study.get_trials(states=(TrialState.COMPLETE,))
        trained = [t for t in complete if "reused_from" not in t.user_attrs]
        archs = [t.user_attrs["arch"] for t in trained]
        # The search alone: first trial start to last trial end (no process start-up).
        span = (
            max(t.datetime_complete for t in complete) - min(t.datetime_start for t in complete)
        ).total_seconds()
        return {
            "workers": workers,
            "wall_s": wall,
            "complete": len(complete),
            "trained": len(trained),
            "trained_twice": len(archs) - len(set(archs)),
            "trials_per_hour": len(complete) / wall * 3600,
            "trials_per_hour_in_search": len(complete) / span * 3600,
            "train_s_per_trial": float(np.mean([t.user_attrs["train_seconds"] for t in trained])),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--images", type=int, default=2876, help="per candidate (2 epochs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/search_workers.json")
    args = parser.parse_args()
    runs = []
    for r in range(args.repeats):
        for workers in (1, 2):
            result = run(workers, args.trials, args.images, seed=r)
            print(json.dumps(result), flush=True)
            runs.append(result)
    by = {n: [x["trials_per_hour"] for x in runs if x["workers"] == n] for n in (1, 2)}
    ratios = [two / one for one, two in zip(by[1], by[2], strict=True)]
    inner = {n: [x["trials_per_hour_in_search"] for x in runs if x["workers"] == n] for n in (1, 2)}
    summary = {
        "cores": len(os.sched_getaffinity(0)),
        "load_avg_at_end": os.getloadavg()[0],
        "trials": args.trials,
        "images_per_candidate": args.images,
        "repeats": args.repeats,
        "median_trials_per_hour": {str(n): float(np.median(v)) for n, v in by.items()},
        "range_trials_per_hour": {str(n): [min(v), max(v)] for n, v in by.items()},
        "ratio_2_to_1_median": float(np.median(by[2]) / np.median(by[1])),
        "ratio_per_repeat": ratios,
        "median_trials_per_hour_in_search": {str(n): float(np.median(v)) for n, v in inner.items()},
        "ratio_2_to_1_in_search_median": float(np.median(inner[2]) / np.median(inner[1])),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
