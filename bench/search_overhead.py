"""Per-trial overhead of `nasctl search` outside training, and the cost of refusing an
over-budget candidate before training.

    python -m bench.search_overhead [--trials 40] [--out bench/results/search_overhead.json]
        [--dir DIR]

``--dir`` puts the study's journal file on another filesystem (e.g. a tmpfs such as
/dev/shm) to see how much of a trial is the durable journal writes (each one fsynced).

Training is replaced by a constant accuracy so that what is timed is everything else a
trial does: sampling (NSGA-II), building the spec, counting MACs/params, measuring latency
on this machine (the search's quick protocol), and writing the trial to the journal file.
Times are the trials' own start-to-complete times as the storage records them.
Part 1 runs with no budget (every candidate is timed); part 2 with a MACs budget that most
candidates break, so they are refused before latency and training. Part 3 times the
pre-screen decision alone (analytic MACs/params of a sampled spec against the budgets),
apart from the journal writes that record the refused trial durably.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from optuna.trial import TrialState

from estimators import TrainResult, count, get_recipe
from results import SearchConfig, run_search
from search_space import load_space


def _fake_training(*args, **kwargs) -> TrainResult:
    return TrainResult(
        top1=0.5,
        top5=0.9,
        loss=1.0,
        train_loss=1.0,
        train_seconds=0.0,
        images_per_second=0.0,
        epochs=1,
        per_class={},
    )


def _durations(study, feasible: bool) -> list[float]:
    return [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if bool(t.user_attrs.get("feasible")) == feasible
    ]


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "n": len(a),
        "median_s": float(np.median(a)),
        "p10_s": float(np.percentile(a, 10)),
        "p90_s": float(np.percentile(a, 90)),
        "max_s": float(a.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--out", default="bench/results/search_overhead.json")
    parser.add_argument("--dir", default=None, help="Where the journal file goes.")
    args = parser.parse_args()
    recipe = get_recipe("search")
    result = {}
    with (
        tempfile.TemporaryDirectory(dir=args.dir) as tmp,
        mock.patch("results._search.train_and_evaluate", _fake_training),
    ):
        base = dict(trials=args.trials, recipe=recipe, baselines=False, population=8, seed=0)
        study = run_search(SearchConfig(study="overhead", **base), Path(tmp))
        result["all_candidates_timed"] = _stats(_durations(study, True))
        budget = run_search(SearchConfig(study="budget", max_mmacs=2.0, **base), Path(tmp))
        result["refused_before_training"] = _stats(_durations(budget, False))
        result["accepted_under_budget"] = (
            _stats(_durations(budget, True)) if _durations(budget, True) else None
        )
        lines = len((Path(tmp) / "budget.journal").read_text().splitlines())
        result["journal_writes_per_trial"] = lines / len(budget.trials)
    result["journal_dir"] = "tmp default" if args.dir is None else args.dir
    space = load_space()
    rng = np.random.default_rng(0)
    specs = [space.spec_from_params(space.random_params(rng), 10) for _ in range(500)]
    times = []
    for spec in specs:
        t0 = time.perf_counter()
        report = count(spec)
        _ = report.macs / 1e6 > 2.0 or report.params / 1e6 > 1.0
        times.append(time.perf_counter() - t0)
    result["prescreen_decision"] = _stats(times)
    result["target_overhead_s"] = 2.0
    result["target_refusal_s"] = 0.05
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"median overhead {result['all_candidates_timed']['median_s']:.3f} s, "
        f"median refused trial {result['refused_before_training']['median_s'] * 1000:.1f} ms, "
        f"median pre-screen decision {result['prescreen_decision']['median_s'] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
