"""The compare table read: who beats whom, as a Markdown report and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from results._report import save_accuracy_plot

__all__ = ["COMPARE_FILES", "dominated", "markdown_report", "plot_compare", "write_compare_outputs"]

#: What a compare leaves in RUNS/STUDY/compare beside each model's checkpoint and record.
COMPARE_FILES = ("compare.csv", "compare.png", "compare.md")


def dominated(row: Any, frame: pd.DataFrame) -> str:
    """Baselines this candidate beats on both accuracy (higher) and latency (lower).

    Latency is compared as the ratio to the MobileNetV2 timed in the same rounds (the
    median of per-round ratios), not as absolute medians: on a shared machine load drifts
    between rounds and moves every absolute median, while the ratio stays within a fraction
    of a percent (docs/latency.md). With several latency runs the candidate must be faster
    in every one of them: a few percent apart, two models swap places from run to run."""
    if row.baseline:
        return ""
    mine = ratio_runs(row)
    beaten = [
        b.name
        for b in frame[frame["baseline"] & (frame["accuracy"] < row.accuracy)].itertuples()
        if all(m < theirs for m, theirs in zip(mine, ratio_runs(b), strict=True))
    ]
    return ", ".join(beaten)


def ratio_runs(row: Any) -> list[float]:
    """A row's ratio to V2 in each latency run (just the median when runs are not kept)."""
    runs = getattr(row, "ratio_to_v2_runs", None)
    if isinstance(runs, str) and runs:
        return [float(v) for v in runs.split()]
    return [float(row.ratio_to_v2)]


def markdown_report(frame: pd.DataFrame, title: str, command: str) -> str:
    """The compare table as Markdown, from run_compare's frame or its CSV read back (where
    an empty ``dominates`` comes back as NaN). A CSV from before the held-out test split
    (no ``test_split`` column) is labelled as what its accuracy was: val top-1."""
    frame = frame.assign(dominates=frame["dominates"].fillna("").astype(str))
    runs = len(ratio_runs(next(frame.itertuples())))
    held_out = "test_split" in frame
    if held_out:
        first = next(frame.itertuples())
        accuracy_note = (
            f"Accuracy: test top-1 is on the held-out test split ({first.test_split}, "
            f"{int(first.test_images):,} images), which the search never trained or "
            "selected on; candidates are judged on it. val top-1 is on the validation "
            "split the search selected on, for reference."
        )
    else:
        accuracy_note = "Accuracy: top-1 on the validation split (made before test was held out)."
    lines = [
        f"# {title}",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Latency: batch 1, {runs} run(s) of interleaved rounds with MobileNetV2 timed in every "
        "round; ms = median over runs of each run's median, x V2 = median over runs of the "
        "ratio to that MobileNetV2 (range over runs in brackets). x V2 decides who is "
        "faster: a candidate beats a baseline when it is more accurate and its x V2 is "
        "lower in every run.",
        "",
        *(
            [f"Trained on: {', '.join(sorted(set(frame['device'].astype(str))))}.", ""]
            if "device" in frame
            else []
        ),
        accuracy_note,
        "",
        f"| model | {'test top-1 | val top-1' if held_out else 'val top-1'} | "
        "latency ms (p10-p90) | x V2 (runs) | MACs (M) | params (M) | train s | beats |",
        "| --- " * (9 if held_out else 8) + "|",
    ]
    for r in frame.sort_values("ratio_to_v2").itertuples():
        ratios = ratio_runs(r)
        accuracy = f"{r.accuracy:.4f}" + (f" | {r.val_accuracy:.4f}" if held_out else "")
        lines.append(
            f"| {r.name} | {accuracy} | {r.latency_ms:.2f} ({r.latency_p10_ms:.2f}-"
            f"{r.latency_p90_ms:.2f}) | {r.ratio_to_v2:.3f} ({min(ratios):.3f}-"
            f"{max(ratios):.3f}) | {r.macs / 1e6:.2f} | {r.params / 1e6:.3f} | "
            f"{r.train_seconds:.0f} | {r.dominates or '-'} |"
        )
    winners = frame[frame["dominates"].astype(bool)]
    lines += [
        "",
        f"{len(winners)} candidate(s) beat at least one baseline in "
        f"{'test' if held_out else 'val'} accuracy at lower measured latency.",
    ]
    all_baselines = set(frame[frame["baseline"]]["name"])
    total = [r.name for r in winners.itertuples() if set(r.dominates.split(", ")) == all_baselines]
    lines.append(
        f"Beating every baseline: {', '.join(total)}."
        if total
        else "No candidate beats every baseline on both accuracy and latency."
    )
    return "\n".join(lines) + "\n"


def _labels_below(frame: pd.DataFrame) -> set[str]:
    """Models whose label goes under their point: one close to the left of another model
    of about the same accuracy whose label is above (e.g. V1 and V3-Small both at 53.7%)."""
    xs, ys = frame["ratio_to_v2"], frame["accuracy"]
    near_x = 0.25 * max(float(xs.max() - xs.min()), 1e-9)
    near_y = 0.03 * max(float(ys.max() - ys.min()), 1e-9)
    above: list[Any] = []
    below: set[str] = set()
    for r in frame.sort_values("ratio_to_v2").itertuples():
        clash = any(
            abs(r.ratio_to_v2 - a.ratio_to_v2) < near_x and abs(r.accuracy - a.accuracy) < near_y
            for a in above
        )
        if clash:
            below.add(r.name)
        else:
            above.append(r)
    return below


def plot_compare(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """Accuracy vs latency relative to the MobileNetV2 timed in the same rounds (the figure
    that decides who is faster; bars: the p10-p90 of each model's calls on that scale),
    candidates and baselines, each labelled with its median in ms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    below = _labels_below(frame)
    for is_base, colour, label in (
        (False, "tab:blue", "candidates"),
        (True, "tab:orange", "baselines"),
    ):
        part = frame[frame["baseline"] == is_base]
        if part.empty:
            continue
        scale = part["ratio_to_v2"] / part["latency_ms"]
        err = [
            (part["latency_ms"] - part["latency_p10_ms"]) * scale,
            (part["latency_p90_ms"] - part["latency_ms"]) * scale,
        ]
        ax.errorbar(
            part["ratio_to_v2"],
            part["accuracy"],
            xerr=err,
            fmt="o" if not is_base else "s",
            c=colour,
            ms=7,
            capsize=3,
            label=label,
            zorder=3,
        )
        for r in part.itertuples():
            ax.annotate(
                f"{r.name.replace('mobilenet_', '')} ({r.latency_ms:.2f} ms)",
                (r.ratio_to_v2, r.accuracy),
                textcoords="offset points",
                xytext=(4, -12 if r.name in below else 5),
                fontsize=8,
            )
    xlabel = "latency relative to MobileNetV2 timed in the same rounds (bars p10-p90)"
    return save_accuracy_plot(fig, ax, xlabel, title, path)


def write_compare_outputs(
    frame: pd.DataFrame, folder: Path, study: str, preset: str, command: str
) -> list[Path]:
    """Write FOLDER/{compare.csv, compare.png, compare.md} for the compare of ``study``
    retrained with ``preset`` (``command``: the command line the report records) and return
    their paths. An unwritable folder raises OSError."""
    folder.mkdir(parents=True, exist_ok=True)
    csv, png, md = (folder / name for name in COMPARE_FILES)
    frame.to_csv(csv, index=False)
    plot_compare(frame, png, f"study {study}: retrained with preset {preset}")
    md.write_text(markdown_report(frame, f"nasctl compare: study {study}", command), "utf-8")
    return [csv, png, md]
