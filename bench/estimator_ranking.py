"""How well and how fast each accuracy estimator ranks architectures (issue 8).

Samples N architectures across the space (seeded; widths and resolutions spread evenly),
trains each standalone with a preset (the reference accuracy), scores each with a
supernet (trained once here, or an existing file), NASWOT (a zero-cost proxy), and
parameter and MAC counts, then reports Kendall tau and Spearman of every estimator
against the standalone accuracy, candidates scored per CPU-hour, and the supernet's
one-time training cost. Run as a module (a bench/results folder would shadow the
results package otherwise); CIFAR_DIR is CIFAR-10 unpacked outside the project:

    python -m bench.estimator_ranking --data CIFAR_DIR --supernet runs/ranking/supernet.pt

A small run that fits a CPU budget limits the training images:

    python -m bench.estimator_ranking --data CIFAR_DIR --n 20 --train-limit 10000 \\
        --supernet-epochs 3 --score-val-images 2000

The JSON (default bench/results/estimator_ranking.json) is rewritten after every
architecture; running the same command again skips the architectures it holds and
resumes the supernet's training from its file (saved every 5 minutes and on Ctrl-C).

Each standalone reference is also kept in its own file in a folder beside the JSON
(``OUT.standalone/``, or ``--references``), so the work can be split over processes, one
core each, and joined by the plain command; another ``--out`` with the same
``--references`` scores the same references with other settings. ``--only supernet``
trains the supernet and then records every architecture's scores in the JSON, so once it
has finished the supernet file is no longer needed (the JSON and the reference files are
small enough to commit; the supernet is 50 MB):

    python -m bench.estimator_ranking ... --threads 1 --only supernet &
    python -m bench.estimator_ranking ... --threads 1 --only standalone --shard 0/2 &
    python -m bench.estimator_ranking ... --threads 1 --only standalone --shard 1/2
    python -m bench.estimator_ranking ...

While the references train, ``--without-supernet`` prints how NASWOT, params and MACs
rank the ones finished so far.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from estimators import (
    PRESETS,
    ImageData,
    SupernetProgress,
    SupernetRecipe,
    count,
    fit_supernet,
    load_data,
    load_supernet_state,
    naswot,
    new_supernet_state,
    save_supernet,
    train_and_evaluate,
)
from search_space import ArchSpec, SearchSpace, build_model, default_space_text, format_arch

OUT = Path(__file__).parent / "results" / "estimator_ranking.json"
ESTIMATORS = ("supernet", "naswot", "params", "macs")


def sample_archs(space: SearchSpace, n: int, seed: int, num_classes: int) -> list[ArchSpec]:
    """``n`` distinct architectures; (width, resolution) pairs cycle through a seeded
    shuffle of all pairs so that every width and resolution is represented evenly, and
    the blocks are uniformly random."""
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(space.widths, space.resolutions))
    order = [pairs[i] for i in rng.permutation(len(pairs))]
    specs: list[ArchSpec] = []
    seen: set[ArchSpec] = set()
    tries = 0
    while len(specs) < n and tries < 100 * n:
        width, resolution = order[len(specs) % len(order)]
        params = {**space.random_params(rng), "width": width, "resolution": resolution}
        spec = space.spec_from_params(params, num_classes)
        tries += 1
        if spec not in seen:
            seen.add(spec)
            specs.append(spec)
    return specs


def correlations(truth: list[float], scores: list[float]) -> dict[str, float | None]:
    """Kendall tau-b and Spearman rho of ``scores`` against ``truth`` (None where
    undefined: fewer than 3 points, or a constant column)."""
    if len(truth) < 3 or len(set(truth)) < 2 or len(set(scores)) < 2:
        return {"kendall_tau": None, "spearman": None}
    tau = stats.kendalltau(truth, scores).statistic
    rho = stats.spearmanr(truth, scores).statistic
    return {"kendall_tau": round(float(tau), 4), "spearman": round(float(rho), 4)}


def bootstrap_taus(
    truth: list[float], columns: dict[str, list[float]], draws: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Kendall tau of every column against ``truth`` on ``draws`` bootstrap resamples of
    the architectures, the same resamples for every column (so differences are paired).
    A resample whose truth or column is constant gives NaN."""
    rng = np.random.default_rng(seed)
    t = np.asarray(truth)
    cols = {name: np.asarray(v) for name, v in columns.items()}
    taus: dict[str, list[float]] = {name: [] for name in cols}
    for _ in range(draws):
        pick = rng.integers(0, len(t), len(t))
        for name, v in cols.items():
            taus[name].append(float(stats.kendalltau(t[pick], v[pick]).statistic))
    return {name: np.array(v) for name, v in taus.items()}


def interval(values: np.ndarray) -> list[float] | None:
    """The 5th and 95th percentiles of the finite ``values`` (a 90% interval)."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    return [round(float(v), 3) for v in np.percentile(finite, [5, 95])]


def summarise(report: dict[str, Any], intervals: bool = True) -> dict[str, Any]:
    """Correlations and throughput of every estimator; ``intervals`` adds the bootstrap
    intervals (about a second and a half: left out of the saves after every candidate)."""
    rows = report["results"]
    truth = [r["standalone"]["top1"] for r in rows]
    out: dict[str, Any] = {"architectures": len(rows)}
    columns = {name: [r[name]["score"] for r in rows] for name in ESTIMATORS}
    boot = bootstrap_taus(truth, columns) if intervals and len(rows) >= 3 else {}
    for name in ("standalone", *ESTIMATORS):
        entry: dict[str, Any] = {}
        if name != "standalone":
            entry.update(correlations(truth, columns[name]))
            if name in boot:
                entry["kendall_tau_ci90"] = interval(boot[name])
        cpu = [r[name]["cpu_seconds"] for r in rows if "cpu_seconds" in r[name]]
        wall = [r[name]["wall_seconds"] for r in rows if "wall_seconds" in r[name]]
        if cpu:
            entry["cpu_seconds_per_candidate"] = round(float(np.mean(cpu)), 3)
            entry["candidates_per_cpu_hour"] = round(3600 / max(float(np.mean(cpu)), 1e-9), 1)
            entry["wall_seconds_per_candidate"] = round(float(np.mean(wall)), 3)
        out[name] = entry
    if boot:
        # paired: is the supernet's tau distinguishable from the best counter's?
        out["supernet_minus_macs_tau_ci90"] = interval(boot["supernet"] - boot["macs"])
    out["by_width"] = by_width(rows)
    return out


def by_width(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per width multiplier: the mean standalone top-1 and, for every estimator, its mean
    score and its Kendall tau among the architectures of that width alone."""
    out: dict[str, Any] = {}
    for width in sorted({r["width"] for r in rows}):
        group = [r for r in rows if r["width"] == width]
        truth = [r["standalone"]["top1"] for r in group]
        entry: dict[str, Any] = {"architectures": len(group),
                                 "standalone_mean": round(float(np.mean(truth)), 4)}  # fmt: skip
        for name in ESTIMATORS:
            scores = [r[name]["score"] for r in group]
            entry[name] = {
                "mean_score": round(float(np.mean(scores)), 4),
                "kendall_tau": correlations(truth, scores)["kendall_tau"],
            }
        out[f"{width:g}"] = entry
    return out


def write_json(value: Any, path: Path) -> None:
    """Write ``value`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def write(report: dict[str, Any], path: Path, final: bool = False) -> None:
    report["summary"] = summarise(report, intervals=final)
    write_json(report, path)


class Clock:
    """Wall and process CPU seconds (all threads) of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def record(self, **values: Any) -> dict[str, Any]:
        return {**values, "wall_seconds": round(self.wall, 3), "cpu_seconds": round(self.cpu, 3)}


REFERENCE_KEYS = ("data", "train_images", "space_sha", "seed", "recipe")


def reference_path(spec: ArchSpec, folder: Path) -> Path:
    return folder / f"{hashlib.sha256(format_arch(spec).encode()).hexdigest()[:16]}.json"


def saved_reference(
    spec: ArchSpec, folder: Path, settings: dict[str, Any]
) -> dict[str, Any] | None:
    """The standalone reference of ``spec`` in ``folder``, or None if it is not trained yet."""
    arch, path = format_arch(spec), reference_path(spec, folder)
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved["settings"] != settings or saved["arch"] != arch:
        message = f"{path} holds a reference with other settings; pass another --references"
        raise SystemExit(message)
    return dict(saved["standalone"])


def standalone_reference(
    spec: ArchSpec, d: ImageData, recipe: Any, folder: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    """The architecture trained standalone: read from its file in ``folder``, or trained
    and written there (one file per architecture, so processes can share it)."""
    saved = saved_reference(spec, folder, settings)
    if saved is not None:
        return saved
    with Clock() as clock:
        result = train_and_evaluate(spec, d, recipe)
    record = clock.record(top1=result.top1, epochs=result.epochs, loadavg=os.getloadavg())
    write_json({"arch": format_arch(spec), "settings": settings, "standalone": record},
               reference_path(spec, folder))  # fmt: skip
    return record


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N``: this process takes every N-th architecture starting at the K-th."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/2, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"K/N needs 0 <= K < N, got {text!r}")
    return k, n


def train_supernet(
    args: argparse.Namespace, text: str, data: dict[int, ImageData], report: dict[str, Any]
) -> Any:
    """Train (or resume, or just load) the supernet; its cost goes into the report."""
    recipe = SupernetRecipe.of(
        epochs=args.supernet_epochs,
        batch_size=args.batch_size,
        train_images=args.train_limit,
        seed=args.seed,
    )
    first = data[min(data)]
    if args.supernet.exists():
        state = load_supernet_state(args.supernet)
        if state.supernet.space != SearchSpace.from_text(text):
            raise SystemExit(f"{args.supernet} holds a supernet of another space")
        if state.recipe.replace(epochs=recipe.base.epochs) != recipe:
            raise SystemExit(f"{args.supernet} was trained with other settings; pass another")
        epochs = max(state.recipe.base.epochs, args.supernet_epochs)
        state.recipe = state.recipe.replace(epochs=epochs)
    else:
        state = new_supernet_state(text, first, recipe, data_seed=args.seed)
        report["supernet"] = {"cpu_seconds": 0.0}  # a lost file's CPU time is not this one's
    record = report.setdefault("supernet", {"cpu_seconds": 0.0})
    if not state.done:
        saved = time.monotonic()

        def progress(p: SupernetProgress) -> None:
            nonlocal saved
            if p.epoch_end or p.batch % 20 == 0:
                top = f", largest {p.largest_top1:.4f}" if p.largest_top1 is not None else ""
                print(
                    f"supernet epoch {p.epoch + 1}/{p.epochs} step {p.batch}/{p.batches}: loss "
                    f"{p.loss:.3f} ({p.images_per_second:.0f} img/s){top}",
                    flush=True,
                )
            if p.epoch_end or time.monotonic() - saved > 300:
                save_supernet(state, args.supernet)
                saved = time.monotonic()

        with Clock() as clock:
            try:
                fit_supernet(state, data, on_progress=progress)
            except KeyboardInterrupt:
                save_supernet(state, args.supernet)  # the last completed step
                message = f"interrupted; saved {args.supernet}; run again to resume"
                raise SystemExit(message) from None
        save_supernet(state, args.supernet)
        record["cpu_seconds"] = round(record["cpu_seconds"] + clock.cpu, 1)
    record.update(
        path=str(args.supernet),
        recipe=state.recipe.to_dict(),
        train_seconds=round(state.train_seconds, 1),
        images=state.images,
        history=state.history,
    )
    state.supernet.eval()
    return state.supernet


def cheap_scores(spec: ArchSpec, d: ImageData, args: argparse.Namespace) -> dict[str, Any]:
    """The scores that need no supernet: NASWOT (timed) and the parameter and MAC counts."""
    pick = torch.randperm(len(d.train_y), generator=torch.Generator().manual_seed(args.seed))
    mean, std = torch.tensor(d.mean).view(1, 3, 1, 1), torch.tensor(d.std).view(1, 3, 1, 1)
    images = (d.train_x[pick[: args.proxy_images]].float().div(255) - mean) / std
    with Clock() as clock:
        proxy = naswot(build_model(spec, seed=args.seed), images)
    cost = count(spec)
    return {
        # a singular kernel (log 0) ranks last; JSON has no -inf
        "naswot": clock.record(score=proxy if math.isfinite(proxy) else -1e9),
        "params": {"score": cost.params},
        "macs": {"score": cost.macs},
    }


def score_candidate(
    spec: ArchSpec, d: ImageData, supernet: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """Every cheap estimator's score of one architecture, with the time each took."""
    with Clock() as clock:
        score = supernet.score(
            spec,
            d,
            recal_batches=args.recal_batches,
            seed=args.seed,
            val_images=args.score_val_images,
        )
    return {
        "supernet": clock.record(score=score),
        **cheap_scores(spec, d, args),
        "loadavg": os.getloadavg(),
    }


def rank_without_supernet(
    specs: list[ArchSpec], data: dict[int, ImageData], settings: dict[str, Any], args: Any
) -> None:
    """Print how NASWOT, params and MACs rank the references trained so far (a look at a
    run in progress: trains nothing, writes nothing)."""
    truth: list[float] = []
    rows: list[dict[str, Any]] = []
    for spec in specs:
        ref = saved_reference(spec, args.references, settings)
        if ref is not None:
            truth.append(ref["top1"])
            rows.append(cheap_scores(spec, data[spec.resolution], args))
    print(f"{len(truth)} of {len(specs)} references in {args.references}", end="")
    print(f" (top-1 {min(truth):.4f} to {max(truth):.4f})" if truth else "")
    for name in ("naswot", "params", "macs"):
        c = correlations(truth, [r[name]["score"] for r in rows])
        print(f"  {name:9s} Kendall tau {c['kendall_tau']}, Spearman {c['spearman']}")


LABELS = {
    "supernet": "supernet score (top-1 % of the sliced network)",
    "naswot": "NASWOT score",
    "params": "parameters",
    "macs": "MACs",
}


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per estimator: its score against the standalone top-1, one colour per
    width multiplier, Kendall tau and Spearman in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, summary = report["results"], report["summary"]
    truth = np.array([r["standalone"]["top1"] for r in rows]) * 100
    widths = sorted({r["width"] for r in rows})
    fig, grid = plt.subplots(2, 2, figsize=(9, 8.4))
    axes = grid.ravel()
    for ax, name in zip(axes, ESTIMATORS, strict=True):
        for j, width in enumerate(widths):
            pick = [i for i, r in enumerate(rows) if r["width"] == width]
            score = np.array([rows[i][name]["score"] for i in pick], dtype=float)
            score = score * 100 if name == "supernet" else score
            ax.scatter(truth[pick], score, s=18, color=f"C{j}", label=f"width {width:g}")
        if name in ("params", "macs"):
            ax.set_yscale("log")
        s = summary[name]
        title = f"{name}: Kendall tau {s['kendall_tau']}, Spearman {s['spearman']}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"standalone top-1 (%, {report['preset']} preset)")
        ax.set_ylabel(LABELS[name])
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{report['data']}: {summary['architectures']} architectures trained standalone on "
        f"{report['train_images']:,} images;\nsupernet trained on {report['supernet']['images']:,} "
        "images (all epochs)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits, cifar10 or a directory")
    parser.add_argument("--space", type=Path, default=None, help="space TOML (default built-in)")
    parser.add_argument("--n", type=int, default=20, help="architectures to sample")
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, default=None, help="override the preset")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-limit", type=int, default=None, help="training images used")
    parser.add_argument("--supernet", type=Path, default=Path("runs/ranking/supernet.pt"))
    parser.add_argument("--supernet-epochs", type=int, default=5)
    parser.add_argument("--recal-batches", type=int, default=8)
    parser.add_argument("--score-val-images", type=int, default=None)
    parser.add_argument("--proxy-images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference-seed",
        type=int,
        default=None,
        help="training seed of the standalone references (default --seed); the same "
        "architectures trained with another seed (another --out) measure the references' "
        "own noise: python -m bench.reference_noise",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--only",
        choices=("supernet", "standalone"),
        default=None,
        help="only train the supernet, or only the standalone references (joined later by "
        "the command without --only)",
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        help="K/N: with --only standalone, train every N-th reference from the K-th",
    )
    parser.add_argument(
        "--references",
        type=Path,
        default=None,
        help="folder of the standalone references (default: beside --out, OUT.standalone); "
        "another --out can share them to score with other settings",
    )
    parser.add_argument(
        "--without-supernet",
        action="store_true",
        help="only print how NASWOT, params and MACs rank the references trained so far "
        "(a look at a run in progress; trains nothing, writes nothing)",
    )
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="only draw OUT.png from the results in --out (drawn after every full run too)",
    )
    args = parser.parse_args()
    if args.plot_only:
        if not args.out.exists():
            parser.error(f"--plot-only: {args.out} does not exist")
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        print(f"wrote {args.out.with_suffix('.png')}")
        return
    args.references = args.references or args.out.with_suffix(".standalone")
    if args.shard != (0, 1) and args.only != "standalone":
        parser.error("--shard goes with --only standalone")
    torch.set_num_threads(args.threads)

    text = args.space.read_text("utf-8") if args.space else default_space_text()
    space = SearchSpace.from_text(text)
    data = {r: load_data(args.data, r, seed=args.seed) for r in space.resolutions}
    first = data[min(data)]
    print(first.describe(), flush=True)
    seed = args.seed if args.reference_seed is None else args.reference_seed
    recipe = PRESETS[args.preset].replace(
        seed=seed, batch_size=args.batch_size, train_images=args.train_limit
    )
    if args.epochs:
        recipe = recipe.replace(epochs=args.epochs)
    report: dict[str, Any] = {
        "bench": "estimator_ranking",
        "data": first.name,
        "train_images": min(len(first.train_y), args.train_limit or len(first.train_y)),
        "val_images": len(first.val_y),
        "space": space.name,
        "space_sha": hashlib.sha256(text.encode()).hexdigest()[:16],
        "n": args.n,
        "seed": args.seed,
        "preset": args.preset,
        "recipe": recipe.to_dict(),
        "recal_batches": args.recal_batches,
        "score_val_images": args.score_val_images,
        "proxy_images": args.proxy_images,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "results": [],
    }
    same = ("data", "train_images", "space_sha", "n", "seed", "recipe", "recal_batches",
            "score_val_images", "proxy_images")  # fmt: skip
    if args.out.exists():
        old = json.loads(args.out.read_text())
        if any(old.get(k) != report[k] for k in same):
            raise SystemExit(f"{args.out} holds a run with other settings; pass another --out")
        report["results"] = old["results"]
        report["supernet"] = old.get("supernet", {"cpu_seconds": 0.0})
        report["scores"] = old.get("scores", {})
    settings = {k: report[k] for k in REFERENCE_KEYS}
    specs = sample_archs(space, args.n, args.seed, first.num_classes)
    if args.without_supernet:
        rank_without_supernet(specs, data, settings, args)
        return
    if args.only == "standalone":
        k, n = args.shard
        for i in range(k, len(specs), n):
            spec = specs[i]
            d = data[spec.resolution]
            ref = standalone_reference(spec, d, recipe, args.references, settings)
            print(
                f"[{i + 1}/{len(specs)}] w{space.params_of(spec)['width']:g} r{spec.resolution}: "
                f"standalone {ref['top1']:.4f} ({ref['wall_seconds']:.0f} s)",
                flush=True,
            )
        print(f"references in {args.references}")
        return
    # Scores are kept per architecture in the JSON, so the supernet file (50 MB, not
    # committed) is needed only until every candidate is scored.
    scores: dict[str, Any] = report.setdefault("scores", {})
    done = {r["arch"] for r in report["results"]}
    todo = {format_arch(spec) for spec in specs} - set(scores) - done
    if args.only == "supernet" or todo:
        supernet = train_supernet(args, text, data, report)
        write(report, args.out)
        for i, spec in enumerate(specs):
            arch = format_arch(spec)
            if arch in done:
                continue
            if arch not in scores:
                scores[arch] = score_candidate(spec, data[spec.resolution], supernet, args)
                write(report, args.out)
            row = scores[arch]
            print(
                f"[{i + 1}/{len(specs)}] w{space.params_of(spec)['width']:g} r{spec.resolution}: "
                f"supernet {row['supernet']['score']:.4f} "
                f"({row['supernet']['wall_seconds']:.1f} s), naswot {row['naswot']['score']:.1f}",
                flush=True,
            )
    if args.only == "supernet":
        print(f"supernet in {args.supernet}; scores in {args.out}")
        return

    for i, spec in enumerate(specs):
        arch = format_arch(spec)
        if arch in done:
            continue
        standalone = standalone_reference(
            spec, data[spec.resolution], recipe, args.references, settings
        )
        row = scores[arch]
        report["results"].append(
            {
                "arch": arch,
                "width": space.params_of(spec)["width"],
                "resolution": spec.resolution,
                "standalone": standalone,
                **row,
            }
        )
        write(report, args.out)
        print(
            f"[{i + 1}/{len(specs)}] w{report['results'][-1]['width']:g} r{spec.resolution}: "
            f"standalone {standalone['top1']:.4f} ({standalone['wall_seconds']:.0f} s), supernet "
            f"{row['supernet']['score']:.4f}, naswot {row['naswot']['score']:.1f}",
            flush=True,
        )
    write(report, args.out, final=True)
    summary = report["summary"]
    print(f"\n{summary['architectures']} architectures; vs standalone top-1 ({args.preset}):")
    for name in ESTIMATORS:
        s = summary[name]
        rate = s.get("candidates_per_cpu_hour")
        ci = s.get("kendall_tau_ci90")
        print(
            f"  {name:9s} Kendall tau {s['kendall_tau']}"
            + (f" (90% bootstrap {ci[0]:.2f} to {ci[1]:.2f})" if ci else "")
            + f", Spearman {s['spearman']}"
            + (f", {rate:,.0f} candidates per CPU-hour" if rate else "")
        )
    if summary.get("supernet_minus_macs_tau_ci90"):
        lo, hi = summary["supernet_minus_macs_tau_ci90"]
        print(f"  supernet tau minus MACs tau: 90% bootstrap {lo:+.2f} to {hi:+.2f}")
    s = summary["standalone"]
    print(f"  standalone training: {s.get('candidates_per_cpu_hour')} candidates per CPU-hour")
    sn = report["supernet"]
    print(
        f"  supernet one-time training: {sn['train_seconds']:.0f} s wall, "
        f"{sn['cpu_seconds']:.0f} CPU s (this script's share), {sn['images']:,} images"
    )
    plot(report, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
