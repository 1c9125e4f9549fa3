"""How noisy the standalone references of the ranking bench are (issue 8).

The same architectures trained standalone with two training seeds (the ranking bench's
``--reference-seed``) differ in top-1 by the training noise alone. That noise caps the
Kendall tau any estimator can reach against one seed's references: even the
architectures' true accuracies would not order them perfectly. This script matches two
reference folders by architecture and reports the seed-to-seed differences, the Kendall
tau between the two seeds, and an estimated ceiling: the median tau between the first
seed's top-1 of every reference and the same values with the measured noise added
(Monte Carlo; an estimate, since the first seed's values carry noise themselves):

    python -m bench.estimator_ranking --data CIFAR_DIR --n 20 --threads 1 \\
        --only standalone --reference-seed 1 --out bench/results/estimator_ranking_full_seed1.json
    python -m bench.reference_noise bench/results/estimator_ranking_full.standalone \\
        bench/results/estimator_ranking_full_seed1.standalone \\
        --ranking bench/results/estimator_ranking_full.json

With ``--ranking`` it also gives each estimator's Kendall tau against either seed and
against the mean of both seeds, on the architectures trained with both: the mean of two
runs is a less noisy truth than one; against the mean it adds a 90% bootstrap interval
of each tau and of its difference from the MAC count's. ``--out`` names the report (default
``bench/results/reference_noise.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from bench.estimator_ranking import bootstrap_taus, correlations, interval

OUT = Path(__file__).parent / "results" / "reference_noise.json"


def read_folder(folder: Path) -> dict[str, dict[str, Any]]:
    """arch string -> the reference file's contents, for every file of ``folder``."""
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a folder of references")
    refs = {}
    for path in sorted(folder.glob("*.json")):
        saved = json.loads(path.read_text())
        refs[saved["arch"]] = saved
    return refs


def ceiling(top1: np.ndarray, sigma: float, draws: int, seed: int) -> dict[str, float]:
    """Kendall tau between ``top1`` and ``top1`` plus N(0, sigma) noise, over ``draws``
    draws: median and 10th-90th percentiles."""
    rng = np.random.default_rng(seed)
    taus = [
        stats.kendalltau(top1, top1 + rng.normal(0.0, sigma, len(top1))).statistic
        for _ in range(draws)
    ]
    p10, p50, p90 = np.percentile(taus, [10, 50, 90])
    return {name: round(float(v), 3) for name, v in (("median", p50), ("p10", p10), ("p90", p90))}


def against_references(
    ranking: dict[str, Any], common: list[str], a: np.ndarray, b: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Kendall tau of every estimator of a ranking bench report against the first seed's
    top-1, the second seed's, and their mean, on the architectures in both folders (the
    mean of two runs carries half the variance of one: a less noisy truth). Against the
    mean also a 90% bootstrap interval, and one of the difference from the MAC count's tau
    (paired: the same resamples)."""
    rows = {r["arch"]: r for r in ranking["results"]}
    keep = [i for i, arch in enumerate(common) if arch in rows]
    if len(keep) < 3:
        raise SystemExit(f"{len(keep)} of the ranking's architectures have both seeds; need 3")
    truths = {"first": a[keep], "second": b[keep], "mean": (a[keep] + b[keep]) / 2}
    estimators = [k for k, v in rows[common[keep[0]]].items() if isinstance(v, dict)
                  and "score" in v]  # fmt: skip
    columns = {name: [rows[common[i]][name]["score"] for i in keep] for name in estimators}
    boot = bootstrap_taus(list(truths["mean"]), columns)
    out: dict[str, Any] = {}
    for name in estimators:
        out[name] = {
            truth: correlations(list(values), columns[name])["kendall_tau"]
            for truth, values in truths.items()
        }
        out[name]["mean_ci90"] = interval(boot[name])
        if name != "macs" and "macs" in boot:
            out[name]["mean_minus_macs_ci90"] = interval(boot[name] - boot["macs"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="reference folder (the ranking's references)")
    parser.add_argument("second", type=Path, help="the same architectures, another seed")
    parser.add_argument("--draws", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="of the Monte Carlo draws")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--ranking",
        type=Path,
        default=None,
        help="a ranking bench report (estimator_ranking_*.json): also give each estimator's "
        "Kendall tau against either seed and against the mean of both",
    )
    args = parser.parse_args()
    first, second = read_folder(args.first), read_folder(args.second)
    common = sorted(set(first) & set(second))
    if len(common) < 2:
        raise SystemExit(f"{len(common)} architecture(s) in both folders; need at least 2")
    seeds_order = [first[common[0]]["settings"]["recipe"]["seed"],
                   second[common[0]]["settings"]["recipe"]["seed"]]  # fmt: skip
    if len(set(seeds_order)) < 2:
        raise SystemExit("both folders hold references of the same training seed")
    a = np.array([first[arch]["standalone"]["top1"] for arch in common])
    b = np.array([second[arch]["standalone"]["top1"] for arch in common])
    diff = b - a
    # The difference of two runs has twice one run's variance.
    sigma = float(np.std(diff, ddof=1) / np.sqrt(2))
    all_first = np.array([r["standalone"]["top1"] for r in first.values()])
    report: dict[str, Any] = {
        "bench": "reference_noise",
        "architectures_in_both": len(common),
        "references_in_first": len(first),
        "pairs": [
            {"arch": arch, "first": float(x), "second": float(y)}
            for arch, x, y in zip(common, a, b, strict=True)
        ],
        "mean_abs_difference": round(float(np.mean(np.abs(diff))), 4),
        "max_abs_difference": round(float(np.max(np.abs(diff))), 4),
        "sigma_one_run": round(sigma, 4),
        "kendall_tau_between_seeds": (
            round(float(stats.kendalltau(a, b).statistic), 3) if len(common) >= 3 else None
        ),
        "first_top1_range": [float(all_first.min()), float(all_first.max())],
        "ceiling_kendall_tau": ceiling(all_first, sigma, args.draws, args.seed),
    }
    vs_seeds: dict[str, dict[str, Any]] = {}
    if args.ranking:
        if not args.ranking.is_file():
            raise SystemExit(f"--ranking: {args.ranking} is not a file")
        vs_seeds = against_references(json.loads(args.ranking.read_text()), common, a, b)
        report["ranking"] = str(args.ranking)
        report["estimators_vs_seeds"] = vs_seeds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for arch, x, y in zip(common, a, b, strict=True):
        print(f"{x:.4f} -> {y:.4f} ({y - x:+.4f})  {arch[:70]}")
    c = report["ceiling_kendall_tau"]
    print(
        f"{len(common)} architectures in both: mean |difference| "
        f"{report['mean_abs_difference']:.4f}, max {report['max_abs_difference']:.4f}; "
        f"one run's sigma {sigma:.4f}; Kendall tau between the seeds "
        f"{report['kendall_tau_between_seeds']}\n"
        f"ceiling on Kendall tau against the first seed's {len(first)} references "
        f"(range {all_first.min():.4f}-{all_first.max():.4f}): median {c['median']} "
        f"(p10 {c['p10']}, p90 {c['p90']})"
    )
    for name, taus in vs_seeds.items():
        print(
            f"  {name:9s} Kendall tau vs seed {seeds_order[0]} {taus['first']}, vs seed "
            f"{seeds_order[1]} {taus['second']}, vs their mean {taus['mean']}"
            + (f" (90% bootstrap {ci[0]:.2f} to {ci[1]:.2f})" if (ci := taus["mean_ci90"]) else "")
            + (
                f"; minus the MAC count's {d[0]:+.2f} to {d[1]:+.2f}"
                if (d := taus.get("mean_minus_macs_ci90"))
                else ""
            )
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
