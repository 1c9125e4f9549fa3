"""NSGA-II vs random search on CIFAR-10 at equal budget and seed count, and the fronts
against the four MobileNet baselines at the same fidelity.

    mkdir -p CIFAR_DIR && tar xzf cifar10-jpg.tar.gz -C CIFAR_DIR
    flock /tmp/nasctl-heavy.lock python -m bench.search_samplers --data CIFAR_DIR

Every study is a real `nasctl search --target latency` process on the built-in space
(V3-Large skeleton, widths 0.5-1.0, resolutions 32-48) with the same fidelity (``--images``
training images per candidate, the search preset), the same number of finished trials,
and latency from this machine's lookup table (``--lut``, 1 thread; baselines included):
a measured latency on this shared machine moves by tens of percent from one minute to
the next (one smoke run timed MobileNetV2 at 208 ms instead of about 10), which would
decide a hypervolume comparison more than the sampler does. The samplers take turns
(nsga2 seed 0, random seed 0, nsga2 seed 1, ...) so drift of this machine hits both alike.
The baselines are
trained once, in the first study, with the same recipe, and drawn against every front.
Validation uses ``--val-per-class`` images per class of CIFAR-10's test split (a seeded
subset, the same for all studies) to keep evaluation from dominating a trial.

Hypervolume is computed for accuracy vs table latency and for accuracy vs MACs (exact);
the reference point is
(accuracy 0, 1.1 x the largest value seen in any study), the same for all studies, and
the hypervolume is reported after every trial (for the plot) and at the end.

Re-running the same command resumes: finished studies are read back, an interrupted one
continues (its journal is under ``--work``). Writes bench/results/search_samplers.json,
search_samplers_fronts.png and search_samplers_hv.png.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optuna

from results import hypervolume, non_dominated_mask
from results._study import open_storage, trials_frame

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def val_subset(data: Path, work: Path, per_class: int, seed: int) -> Path:
    """An ImageFolder whose train/ is the full training split and whose test/ holds
    ``per_class`` seeded images of each class (symlinks; nothing is copied)."""
    out = work / f"cifar10_val{per_class}"
    test_dir = next(d for d in (data / "test", data / "val") if d.is_dir())
    if not (out / "train").exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / "train").symlink_to((data / "train").resolve(), target_is_directory=True)
    rng = random.Random(seed)
    for cls in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        target = out / "test" / cls.name
        if target.exists():
            continue
        files = sorted(cls.iterdir())
        target.mkdir(parents=True)
        for f in rng.sample(files, min(per_class, len(files))):
            (target / f.name).symlink_to(f.resolve())
    return out


def run_study(name: str, sampler: str, seed: int, args: argparse.Namespace, data: Path) -> float:
    cmd = [sys.executable, "-m", "nasctl", "search", "--target", "latency",
           "--data", str(data), "--trials", str(args.trials), "--sampler", sampler,
           "--seed", str(seed), "--images", str(args.images), "--study", name,
           "--out", str(args.work), "--population", str(args.population)]  # fmt: skip
    if args.lut:
        cmd += ["--latency", "lut", "--lut", str(args.lut)]
    if not args.baselines_in_first or name != args.first:
        cmd.append("--no-baselines")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    (args.work / f"{name}.log").write_text(proc.stdout + proc.stderr)
    return time.perf_counter() - started


def load(name: str, work: Path) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, work, name))


def trials_of(study: optuna.Study) -> list[dict]:
    frame = trials_frame(study)
    frame = frame[(frame["state"] == "COMPLETE") & frame["accuracy"].notna()]
    return frame.sort_values("number").to_dict("records")


def hv_curve(rows: list[dict], key: str, ref: float) -> list[float]:
    points, out = [], []
    for r in rows:
        points.append((r["accuracy"], r[key]))
        out.append(hypervolume(points, ["maximize", "minimize"], [0.0, ref]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="CIFAR-10 ImageFolder")
    ap.add_argument("--trials", type=int, default=20, help="finished trials per study")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--samplers", nargs="*", default=["nsga2", "random"])
    ap.add_argument("--images", type=int, default=4000, help="training images per candidate")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--val-per-class", type=int, default=300)
    ap.add_argument(
        "--lut",
        type=Path,
        default=RESULTS / "lut_torch_t1.json",
        help="latency table (candidates and baselines); 'none' to measure each candidate",
    )
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_samplers")
    ap.add_argument("--out", type=Path, default=RESULTS / "search_samplers.json")
    args = ap.parse_args()
    if str(args.lut) == "none":
        args.lut = None
    args.work.mkdir(parents=True, exist_ok=True)
    data = val_subset(args.data, args.work, args.val_per_class, seed=0)

    names = [(f"{s}-seed{seed}", s, seed) for seed in args.seeds for s in args.samplers]
    args.first, args.baselines_in_first = names[0][0], True
    walls = {}
    for name, sampler, seed in names:
        print(f"{name}: running (or resuming) {args.trials} trials", flush=True)
        walls[name] = run_study(name, sampler, seed, args, data)
        print(f"{name}: done in {walls[name]:.0f} s", flush=True)

    studies = {name: trials_of(load(name, args.work)) for name, _, _ in names}
    baselines = load(args.first, args.work).user_attrs
    base_rows = [v for k, v in sorted(baselines.items()) if k.startswith("baseline:")]
    every = [r for rows in studies.values() for r in rows]
    refs = {
        "latency_ms": 1.1 * max(r["latency_ms"] for r in every + base_rows),
        "mmacs": 1.1 * max(r["macs"] / 1e6 for r in every + base_rows),
    }
    for rows in studies.values():
        for r in rows:
            r["mmacs"] = r["macs"] / 1e6
    report_studies = []
    for name, sampler, seed in names:
        rows = studies[name]
        curves = {k: hv_curve(rows, k, ref) for k, ref in refs.items()}
        pts = np.array([(r["accuracy"], r["latency_ms"]) for r in rows])
        front = [rows[i] for i in np.flatnonzero(non_dominated_mask(pts, ["maximize", "minimize"]))]
        beats = {}
        for b in base_rows:
            winners = [
                r["number"]
                for r in rows
                if r["accuracy"] > b["accuracy"] and r["latency_ms"] < b["latency_ms"]
            ]
            beats[b["name"]] = winners
        report_studies.append(
            {
                "study": name,
                "sampler": sampler,
                "seed": seed,
                "trials": len(rows),
                "wall_seconds_this_run": round(walls[name], 1),
                "hv_latency": curves["latency_ms"][-1],
                "hv_mmacs": curves["mmacs"][-1],
                "hv_latency_curve": curves["latency_ms"],
                "hv_mmacs_curve": curves["mmacs"],
                "best_accuracy": max(r["accuracy"] for r in rows),
                "front": [
                    {k: r[k] for k in ("number", "accuracy", "latency_ms", "mmacs", "arch")}
                    for r in sorted(front, key=lambda r: r["latency_ms"])
                ],
                "beats_baseline": beats,
            }
        )
        best = max(r["accuracy"] for r in rows)
        print(
            f"{name}: {len(rows)} trials, HV(acc, latency) {curves['latency_ms'][-1]:.3f}, "
            f"HV(acc, MACs) {curves['mmacs'][-1]:.3f}, best acc {best:.3f}",
            flush=True,
        )
    summary = {}
    for sampler in args.samplers:
        mine = [s for s in report_studies if s["sampler"] == sampler]
        summary[sampler] = {
            k: {
                "median": statistics.median(s[k] for s in mine),
                "min": min(s[k] for s in mine),
                "max": max(s[k] for s in mine),
            }
            for k in ("hv_latency", "hv_mmacs", "best_accuracy")
        }
    report = {
        "bench": "search_samplers",
        "data": "CIFAR-10 (train 50,000; val = a seeded subset of the test split)",
        "val_per_class": args.val_per_class,
        "images_per_candidate": args.images,
        "trials_per_study": args.trials,
        "population": args.population,
        "reference_point": {"accuracy": 0.0, **refs},
        "loadavg_end": os.getloadavg(),
        "baselines": [
            {k: b.get(k) for k in ("name", "resolution", "accuracy", "latency_ms", "mmacs")}
            for b in base_rows
        ],
        "summary": summary,
        "studies": report_studies,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    plot(report, studies, base_rows, args.out.with_name("search_samplers"))
    print(f"wrote {args.out}")


COLOURS = {"nsga2": "tab:blue", "random": "tab:orange", "tpe": "tab:green"}


def plot(report: dict, studies: dict, base_rows: list[dict], stem: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for ax, key, label in zip(
        axes,
        ("latency_ms", "mmacs"),
        ("latency (ms, 1 thread, lookup table)", "MACs (M)"),
        strict=True,
    ):
        for s in report["studies"]:
            rows = studies[s["study"]]
            xs = [r[key] for r in rows]
            ys = [100 * r["accuracy"] for r in rows]
            style = "-" if s["seed"] == report["studies"][0]["seed"] else "--"
            colour = COLOURS.get(s["sampler"], "grey")
            ax.scatter(xs, ys, s=12, color=colour, alpha=0.35)
            pts = np.array([(r["accuracy"], r[key]) for r in rows])
            idx = np.flatnonzero(non_dominated_mask(pts, ["maximize", "minimize"]))
            idx = sorted(idx, key=lambda i: xs[i])
            ax.step([xs[i] for i in idx], [ys[i] for i in idx], where="post", ls=style,
                    color=colour, label=f"{s['sampler']} seed {s['seed']} front")  # fmt: skip
        for b in base_rows:
            x = b[key] if key in b else b["macs"] / 1e6
            ax.scatter([x], [100 * b["accuracy"]], marker="*", s=140, color="black", zorder=5)
            ax.annotate(b["name"].replace("mobilenet_", ""), (x, 100 * b["accuracy"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 (%, CIFAR-10 val subset)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"NSGA-II vs random, {report['trials_per_study']} trials each, "
        f"{report['images_per_candidate']} training images per candidate"
    )
    fig.savefig(stem.with_name(stem.name + "_fronts.png"), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    for ax, key, label in zip(
        axes, ("hv_latency_curve", "hv_mmacs_curve"), ("accuracy x latency", "accuracy x MACs"),
        strict=True,
    ):  # fmt: skip
        for s in report["studies"]:
            style = "-" if s["seed"] == report["studies"][0]["seed"] else "--"
            colour = COLOURS.get(s["sampler"], "grey")
            ax.plot(range(1, len(s[key]) + 1), s[key], ls=style, color=colour,
                    label=f"{s['sampler']} seed {s['seed']}")  # fmt: skip
        ax.set_xlabel("finished trials")
        ax.set_ylabel(f"hypervolume ({label})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.savefig(stem.with_name(stem.name + "_hv.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
