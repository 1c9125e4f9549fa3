"""Search + compare within a fixed wall-clock budget: a cheap estimator vs training every
candidate (issue 8's end-to-end goal).

One *arm* is one whole user workflow under one budget, on one core (``--threads 1``
everywhere, so two arms run side by side on this 2-core machine and get the same share):

- ``supernet``: `nasctl supernet train` (timed, inside the budget), then `nasctl search
  --accuracy supernet` until the budget minus ``--compare-reserve`` minutes is spent;
- ``train``: `nasctl search --accuracy train` (every candidate trained at the search
  fidelity) for the same time;

then, in both, `nasctl compare --top K` retrains the K most accurate front members with the
full preset on the whole data set and measures them against the four baselines. The
baselines' trained results are shared by the arms: ``--baselines-from`` is a compare
``models/`` folder whose records (same architecture, recipe, data and seed) compare
reuses instead of retraining; they are the yardstick, not search work, and are outside
either budget. The default folder is the one docs/benchmarks.md's CIFAR-10 compare run writes
(`nasctl compare --study nsga2-seed0 --runs runs/bench_samplers --top 2 --data CIFAR_DIR
--baseline-resolution 32 --threads 1`, after `python -m bench.search_samplers`); the
records must name the same ``--data`` path. Search and validation use
``--val-per-class`` images per class of the test split (the same for both arms); latency
in the search comes from ``--lut`` with the hard budget ``--max-latency``. Run as a module
(bench/results would shadow the results package); CIFAR_DIR is CIFAR-10 unpacked outside
the project:

    python -m bench.search_end_to_end arm supernet --data CIFAR_DIR --budget 105 &
    python -m bench.search_end_to_end arm train --data CIFAR_DIR --budget 105
    python -m bench.search_end_to_end joint          # after both: one latency measurement

``joint`` puts both arms' finalists and the baselines into one CSV and re-measures them
all together (bench/compare_latency.py, ``--repeats`` interleaved measurements, MobileNetV2
in every round) on a machine with nothing else running, then says which finalist beats
which baseline: more accurate, and faster relative to MobileNetV2 in every repeat. Writes
bench/results/end_to_end_{arm}.json, end_to_end_compare.csv, end_to_end.json and the plot
end_to_end.png (``plot`` redraws it from the JSON without measuring). Results and their
reading: docs/supernet.md, "End to end".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna

from bench.search_samplers import val_subset
from results._study import open_storage, trials_frame

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BASELINES = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


def space_file(work: Path, resolution: int) -> Path:
    """The built-in space with its resolution fixed to the one the comparison runs at."""
    text = (ROOT / "search_space" / "spaces" / "default.toml").read_text()
    old = "resolutions = [32, 40, 48]"
    if old not in text:
        raise SystemExit("the built-in space's resolutions line changed; update this script")
    out = work / f"space_r{resolution}.toml"
    out.write_text(text.replace(old, f"resolutions = [{resolution}]", 1))
    return out


def run(cmd: list[str], log: Path) -> float:
    """Run one nasctl command (1 thread, output to ``log``); its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "OMP_NUM_THREADS": "1"}
    print("$", " ".join(cmd[2:]), flush=True)
    started = time.perf_counter()
    with log.open("a") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[3]} failed with exit {proc.returncode}; see {log}")
    return time.perf_counter() - started


def seed_baselines(source: Path, models: Path, data: str, resolution: int) -> None:
    """Copy the baselines' trained records into a compare models/ folder under the names
    compare gives them (no suffix at the study's resolution)."""
    models.mkdir(parents=True, exist_ok=True)
    for name in BASELINES:
        found = [source / f"{name}.json", source / f"{name}_r{resolution}.json"]
        record = next((f for f in found if f.exists()), None)
        if record is None:
            raise SystemExit(f"no trained record of {name} in {source}")
        key = json.loads(record.read_text())["key"]
        if key["data"] != data:
            raise SystemExit(f"{record} was trained on {key['data']}, not {data}")
        shutil.copy(record, models / f"{name}.json")


def _relative(path: Path) -> str:
    """A path as recorded: relative to the project (no machine paths in results)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name


def arm(args: argparse.Namespace) -> None:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    val = val_subset(args.data, work, args.val_per_class, args.seed)
    space = space_file(work, args.resolution)
    nasctl = [sys.executable, "-m", "nasctl"]
    log = work / f"{args.arm}.log"
    study = args.arm
    seed_baselines(
        args.baselines_from, work / study / "compare" / "models", str(args.data), args.resolution
    )
    started = time.perf_counter()
    stages: dict[str, float] = {}
    search = [
        *nasctl,
        "search",
        "--target",
        "latency",
        "--data",
        str(val),
        "--space",
        str(space),
        "--trials",
        "100000",
        "--seed",
        str(args.seed),
        "--study",
        study,
        "--runs",
        str(work),
        "--threads",
        "1",
        "--no-baselines",
        "--latency",
        "lut",
        "--lut",
        str(args.lut),
        "--max-latency",
        str(args.max_latency),
    ]
    if args.arm == "supernet":
        supernet = work / "supernet.pt"
        stages["supernet_train"] = run(
            [
                *nasctl,
                "supernet",
                "train",
                "--data",
                str(val),
                "--space",
                str(space),
                "--out",
                str(supernet),
                "--epochs",
                str(args.supernet_epochs),
                "--train-images",
                str(args.supernet_images),
                "--threads",
                "1",
                "--seed",
                str(args.seed),
            ],
            log,
        )
        search += [
            "--accuracy",
            "supernet",
            "--supernet",
            str(supernet),
            "--population",
            str(args.population_supernet),
        ]
    else:
        search += [
            "--accuracy",
            "train",
            "--images",
            str(args.images),
            "--population",
            str(args.population_train),
        ]
    left = args.budget * 60 - (time.perf_counter() - started) - args.compare_reserve * 60
    if left < 60:
        raise SystemExit(f"only {left:.0f} s left for the search; raise --budget")
    stages["search"] = run([*search, "--timeout", f"{left:.0f}"], log)
    stages["compare"] = run(
        [
            *nasctl,
            "compare",
            "--study",
            study,
            "--runs",
            str(work),
            "--top",
            str(args.top),
            "--data",
            str(args.data),
            "--threads",
            "1",
            "--latency-threads",
            "1",
        ],
        log,
    )
    total = time.perf_counter() - started

    trials = trials_frame(
        optuna.load_study(study_name=study, storage=open_storage(None, work, study))
    )
    done = trials[trials["state"] == "COMPLETE"]
    scored = done[done["accuracy"].notna()]
    rows = list(csv.DictReader((work / study / "compare" / "compare.csv").open()))
    report = {
        "bench": "search_end_to_end",
        "arm": args.arm,
        "budget_s": args.budget * 60,
        "wall_s": round(total, 1),
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "trials_complete": len(done),
        "candidates_scored": len(scored),
        "candidates_refused": int(len(done) - len(scored)),
        "settings": {
            k: _relative(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("func", "data")
        },
        "compare": rows,
        "load_after": os.getloadavg(),
    }
    out = RESULTS / f"end_to_end_{args.arm}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.arm}: {len(scored)} candidates scored, {total / 60:.1f} min; wrote {out}")


def _search_counts(work: Path, study: str, finalists: list[str]) -> dict[str, object]:
    """How many distinct architectures the arm's search evaluated (a repeat of an
    architecture reuses its result), what one evaluation took, and the search's own
    score of each finalist."""
    trials = trials_frame(
        optuna.load_study(study_name=study, storage=open_storage(None, work, study))
    )
    scored = trials[(trials["state"] == "COMPLETE") & trials["accuracy"].notna()]
    seconds = "score_seconds" if study == "supernet" else "train_seconds"
    return {
        "distinct_architectures_evaluated": int(scored["arch"].nunique()),
        "median_seconds_per_evaluation": round(float(scored[seconds].median()), 2),
        "finalists_search_accuracy": {
            f"trial_{int(r.number)}": float(r.accuracy)
            for r in scored.itertuples()
            if f"trial_{int(r.number)}" in finalists
        },
    }


def joint(args: argparse.Namespace) -> None:
    """Both arms' finalists and the baselines in one CSV, re-measured together."""
    rows, seen = [], set()
    arms = {}
    for name in ("supernet", "train"):
        report = json.loads((RESULTS / f"end_to_end_{name}.json").read_text())
        arms[name] = report
        for r in report["compare"]:
            if r["baseline"] == "True":
                if r["name"] in seen:
                    continue
                seen.add(r["name"])
            else:
                r = {**r, "name": f"{name}_{r['name']}"}
            rows.append(
                {k: r[k] for k in ("name", "baseline", "accuracy", "macs", "params", "arch")}
            )
    table = RESULTS / "end_to_end_compare.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "compare_latency.py"),
            str(table),
            "--repeats",
            str(args.repeats),
            "--rounds",
            str(args.rounds),
        ],
        check=True,
    )
    timing = json.loads((RESULTS / "end_to_end_compare_latency.json").read_text())
    models = timing["models"]
    accuracy = {r["name"]: float(r["accuracy"]) for r in rows}
    verdict = {}
    for r in rows:
        if r["baseline"] == "True":
            continue
        beats = [
            b
            for b in BASELINES
            if accuracy[r["name"]] > accuracy[b]
            and timing["runs_faster_than"][r["name"]][b] == args.repeats
        ]
        verdict[r["name"]] = {
            "accuracy": accuracy[r["name"]],
            "ratio_to_v2": models[r["name"]]["ratio_to_v2"],
            "ratio_to_v2_range": [
                models[r["name"]]["ratio_to_v2_min"],
                models[r["name"]]["ratio_to_v2_max"],
            ],
            "beats": beats,
            "accuracy_margin_over_beaten": {
                b: round(accuracy[r["name"]] - accuracy[b], 4) for b in beats
            },
        }
    summary = {
        "bench": "search_end_to_end joint",
        "arms": {
            n: {
                k: a[k]
                for k in (
                    "wall_s",
                    "stages_s",
                    "candidates_scored",
                    "candidates_refused",
                    "trials_complete",
                )
            }
            | _search_counts(
                args.work, n, [r["name"] for r in a["compare"] if r["baseline"] != "True"]
            )
            for n, a in arms.items()
        },
        "baselines": {
            b: {"accuracy": accuracy[b], "ratio_to_v2": models[b]["ratio_to_v2"]} for b in BASELINES
        },
        "finalists": verdict,
        "repeats": args.repeats,
        "rounds": args.rounds,
    }
    out = RESULTS / "end_to_end.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, RESULTS / "end_to_end.png")
    for name, v in verdict.items():
        print(
            f"{name}: top-1 {v['accuracy']:.4f}, x V2 {v['ratio_to_v2']:.3f} "
            f"({v['ratio_to_v2_range'][0]:.3f}-{v['ratio_to_v2_range'][1]:.3f}), "
            f"beats {', '.join(v['beats']) or 'none'}"
        )
    print(f"wrote {out}")


def plot(summary: dict, path: Path) -> None:
    """Top-1 against latency relative to MobileNetV2 (median and range over the joint
    measurements): baselines in black, each arm's finalists in its colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    names = {
        "mobilenet_v1": "MobileNetV1",
        "mobilenet_v2": "MobileNetV2",
        "mobilenet_v3_large": "MobileNetV3-Large",
        "mobilenet_v3_small": "MobileNetV3-Small",
    }
    for name, b in summary["baselines"].items():
        x, y = b["ratio_to_v2"], 100 * b["accuracy"]
        ax.scatter(x, y, color="black", marker="s")
        above = name == "mobilenet_v1"  # V1 and V3-Small sit side by side at 53.7%
        ax.annotate(
            names.get(name, name),
            (x, y),
            textcoords="offset points",
            ha="center",
            xytext=(0, 7 if above else -13),
            fontsize=8,
        )
    colours = {"supernet": "tab:orange", "train": "tab:blue"}
    labelled = set()
    for name, f in summary["finalists"].items():
        arm = name.split("_trial_")[0]
        low, high = f["ratio_to_v2_range"]
        x, y = f["ratio_to_v2"], 100 * f["accuracy"]
        wall = summary["arms"][arm]["wall_s"] / 60
        label = None if arm in labelled else f"--accuracy {arm} ({wall:.0f} min in all)"
        labelled.add(arm)
        ax.errorbar(
            x, y, xerr=[[x - low], [high - x]], fmt="o", color=colours[arm], capsize=3, label=label
        )
        ax.annotate(
            name.split("_", 1)[1].replace("_", " "),
            (x, y),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set_xlabel(
        f"latency / MobileNetV2 latency (median and range of {summary['repeats']} "
        "interleaved measurements, 1 thread)"
    )
    ax.set_ylabel("CIFAR-10 top-1 (%), full preset, 10,000 test images")
    ax.set_title("Search + compare on one core each: supernet vs training every candidate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(required=True)
    a = sub.add_parser("arm", help="one workflow under the budget")
    a.add_argument("arm", choices=["supernet", "train"])
    a.add_argument("--data", type=Path, required=True, help="CIFAR-10 ImageFolder")
    a.add_argument("--budget", type=float, default=120, help="minutes for the whole arm")
    a.add_argument(
        "--compare-reserve",
        type=float,
        default=35,
        help="minutes of the budget kept for nasctl compare",
    )
    a.add_argument("--resolution", type=int, default=32)
    a.add_argument("--max-latency", type=float, default=3.2, help="ms, from --lut")
    a.add_argument("--lut", type=Path, default=RESULTS / "lut_torch_t1.json")
    a.add_argument("--images", type=int, default=4000, help="train arm: images per candidate")
    a.add_argument("--population-train", type=int, default=8)
    a.add_argument("--population-supernet", type=int, default=24)
    a.add_argument("--supernet-epochs", type=int, default=3)
    a.add_argument("--supernet-images", type=int, default=12000)
    a.add_argument("--top", type=int, default=2)
    a.add_argument("--val-per-class", type=int, default=300)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument(
        "--baselines-from",
        type=Path,
        default=ROOT / "runs" / "bench_samplers" / "nsga2-seed0" / "compare" / "models",
    )
    a.add_argument("--work", type=Path, default=ROOT / "runs" / "end_to_end")
    a.set_defaults(func=arm)
    j = sub.add_parser("joint", help="both arms' finalists measured together")
    j.add_argument("--repeats", type=int, default=5)
    j.add_argument("--rounds", type=int, default=10)
    j.add_argument("--work", type=Path, default=ROOT / "runs" / "end_to_end")
    j.set_defaults(func=joint)
    pl = sub.add_parser("plot", help="redraw end_to_end.png from end_to_end.json")
    pl.set_defaults(
        func=lambda _: plot(
            json.loads((RESULTS / "end_to_end.json").read_text()), RESULTS / "end_to_end.png"
        )
    )
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
