"""The front of a search as a table and a picture, drawn against the baselines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from results._pareto import non_dominated_mask
from results._study import trials_frame

__all__ = [
    "TARGET_COLUMNS",
    "front_frame",
    "highest_fidelity",
    "next_steps",
    "pareto_title",
    "pick_trial",
    "plot_front",
    "save_accuracy_plot",
    "search_report",
    "study_unit",
    "target_column",
]

#: Target unit name (as stored by the search) -> (trials-table column, axis label).
TARGET_COLUMNS = {
    "latency_ms": ("latency_ms", "latency (ms)"),
    "mmacs": ("mmacs", "MACs (M)"),
    "mparams": ("mparams", "params (M)"),
}


def target_column(frame: pd.DataFrame, unit: str) -> pd.Series:
    if unit == "mmacs":
        return frame["macs"].astype(float) / 1e6
    if unit == "mparams":
        return frame["params"].astype(float) / 1e6
    return frame["latency_ms"].astype(float)


def highest_fidelity(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture: its highest rung (halving), else its first trial (reused
    duplicates carry the same accuracy)."""
    if "rung" in frame and frame["rung"].notna().any():
        rung = frame["rung"].fillna(0).astype(int)
        frame = frame.assign(_rung=rung).sort_values("_rung", ascending=False, kind="stable")
        frame = frame.drop(columns="_rung")
    return frame.drop_duplicates(subset=["arch"]).sort_index()


def is_multi_fidelity(frame: pd.DataFrame) -> bool:
    """Whether the trials hold accuracies at several fidelities (a halving search)."""
    return "rung" in frame and frame["rung"].notna().any() and frame["rung"].nunique() > 1


def front_frame(frame: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The feasible, finished, trained trials that no other such trial dominates
    (higher accuracy at lower or equal cost), cheapest first; one row per architecture,
    at its highest fidelity (reused duplicates and lower rungs dropped)."""
    ok = frame[
        (frame["state"] == "COMPLETE")
        & frame["feasible"].fillna(False).astype(bool)
        & frame["accuracy"].notna()
    ].copy()
    if ok.empty:
        return ok
    ok["cost"] = target_column(ok, unit)
    ok = highest_fidelity(ok)
    points = np.column_stack([ok["accuracy"].to_numpy(float), ok["cost"].to_numpy(float)])
    mask = non_dominated_mask(points, ["maximize", "minimize"])
    return ok[mask].sort_values("cost")


def plot_front(
    frame: pd.DataFrame,
    baselines: list[dict[str, Any]],
    unit: str,
    path: Path,
    title: str,
    budget: float | None = None,
) -> Path:
    """Accuracy vs the target: every trained architecture, the front highlighted (each
    point named by its trial number), baselines marked, the target's budget (when the
    study has one) a dashed line. Infeasible candidates are drawn at their cost on the x axis only
    (no accuracy: never trained). After a halving search each architecture is drawn at
    its highest fidelity, shaded by rung, and the title says so. In a supernet study a
    baseline trained standalone (not a point of the space) is drawn hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = TARGET_COLUMNS[unit][1]
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    trained = frame[(frame["state"] == "COMPLETE") & frame["feasible"].fillna(False).astype(bool)]
    trained = trained[trained["accuracy"].notna()]
    if is_multi_fidelity(frame):
        title += "\n(each architecture at its highest fidelity)"
        best = highest_fidelity(trained)
        rungs = best["rung"].fillna(0).astype(int)
        top = max(1, int(frame["rung"].max()))
        for rung in sorted(rungs.unique()):
            at = best[rungs == rung]
            ax.scatter(
                target_column(at, unit),
                at["accuracy"],
                s=18,
                c=str(0.75 - 0.45 * rung / top),
                label=f"rung {rung}: {at['fidelity'].iloc[0]}",
                zorder=2,
            )
    elif not trained.empty:
        scored = trained["fidelity"].astype(str).str.startswith("supernet:").all()
        ax.scatter(
            target_column(trained, unit),
            trained["accuracy"],
            s=18,
            c="0.65",
            label="candidates (scored by the supernet)" if scored else "candidates",
            zorder=2,
        )
    infeasible = frame[
        (frame["state"] == "COMPLETE") & ~frame["feasible"].fillna(True).astype(bool)
    ]
    costs = target_column(infeasible, unit).replace([np.inf], np.nan).dropna()
    if not costs.empty:
        ax.plot(
            costs,
            np.zeros(len(costs)),
            "x",
            c="tab:red",
            ms=5,
            alpha=0.6,
            label="over budget (not trained)",
            zorder=2,
        )
    front = front_frame(frame, unit)
    if not front.empty:
        ax.step(front["cost"], front["accuracy"], where="post", c="tab:blue", lw=1.5, zorder=3)
        ax.scatter(
            front["cost"],
            front["accuracy"],
            s=40,
            c="tab:blue",
            label="Pareto front (#trial)",
            zorder=4,
        )
        for r in front.itertuples():  # the trial number, as in trials.csv and `results show`
            ax.annotate(
                f"#{int(r.number)}",
                (r.cost, r.accuracy),
                textcoords="offset points",
                xytext=(-4, 6),
                ha="right",
                fontsize=7,
                color="tab:blue",
            )
    if budget is not None:
        ax.axvline(budget, ls="--", lw=1, c="tab:red", label=f"budget {budget:.4g}", zorder=1)
    markers = ["s", "D", "^", "v", "P", "*"]
    for i, b in enumerate(baselines):
        cost = b.get(unit)
        if cost is None or b.get("accuracy") is None:
            continue
        # A baseline trained standalone in a supernet study (not a point of the space):
        # hollow, and named so; its accuracy is not on the candidates' scale.
        standalone = bool(b.get("note"))
        ax.scatter(
            [cost],
            [b["accuracy"]],
            marker=markers[i % len(markers)],
            s=70,
            c="none" if standalone else "tab:orange",
            edgecolors="tab:orange" if standalone else "k",
            zorder=5,
            label=b["name"] + (" (trained standalone)" if standalone else ""),
        )
        ax.annotate(
            b["name"].replace("mobilenet_", ""),
            (cost, b["accuracy"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    return save_accuracy_plot(fig, ax, label, title, path)


def save_accuracy_plot(fig: Any, ax: Any, xlabel: str, title: str, path: Path) -> Path:
    """Label an accuracy-vs-cost axes the house way and write it as PNG."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation top-1 accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:  # an empty plot (no trial yet) has no legend
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def study_unit(study: Any) -> str:
    """The trials-table unit of a nasctl study's target (latency_ms, mmacs, mparams)."""
    target = study.user_attrs.get("nasctl", {}).get("target", "latency")
    return {"latency": "latency_ms", "flops": "mmacs", "params": "mparams"}[target]


def pick_trial(
    study: Any, trial: int | None = None, best: bool = False, best_under_ms: float | None = None
) -> tuple[int, str]:
    """The trial to export and its spec JSON: ``trial`` by number, the most accurate
    feasible trained trial (``best``), or the most accurate one under a latency."""
    from search_space import NasctlError

    chosen = [trial is not None, best, best_under_ms is not None]
    if sum(chosen) != 1:
        raise NasctlError("give exactly one of --trial N, --best or --best-under MS with --study")
    frame = trials_frame(study)
    if trial is not None:
        rows = frame[frame["number"] == trial]
        if rows.empty or rows.iloc[0]["state"] != "COMPLETE":
            raise NasctlError(f"--trial {trial} is not a finished trial of {study.study_name!r}")
        return trial, str(study.trials[trial].user_attrs["spec"])
    ok = frame[(frame["state"] == "COMPLETE") & frame["feasible"].fillna(False).astype(bool)]
    ok = highest_fidelity(ok[ok["accuracy"].notna()])
    if best_under_ms is not None:
        ok = ok[ok["latency_ms"].astype(float) <= best_under_ms]
    if ok.empty:
        cap = f" under {best_under_ms:g} ms" if best_under_ms is not None else ""
        raise NasctlError(f"study {study.study_name!r} has no feasible trained trial{cap}")
    number = int(ok.sort_values(["accuracy", "number"], ascending=[False, True]).iloc[0]["number"])
    return number, str(study.trials[number].user_attrs["spec"])


# --- what a search wrote, in words ------------------------------------------------------


def _resolutions(archs: pd.Series) -> str:
    """``32 px`` or ``160-224 px`` from arch strings (``r<res>_n<classes>,...``)."""
    found = sorted({int(m[1]) for a in archs.dropna() if (m := re.match(r"r(\d+)_", str(a)))})
    if not found:
        return "-"
    return f"{found[0]} px" if len(found) == 1 else f"{found[0]}-{found[-1]} px"


def _fidelity_words(label: str) -> str:
    """``search:e1x64:b32`` as ``1 epoch of 64 images, batch 32 (search)``; other labels
    (halving's rungs, a supernet's digest) as they are."""
    m = re.fullmatch(r"(?P<preset>[\w-]+):e(?P<e>\d+)(?:x(?P<n>\d+))?:b(?P<b>\d+)", label)
    if m is None:
        return label
    epochs = int(m["e"])
    what = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    what += f" of {int(m['n']):,} images" if m["n"] else " of the training split"
    return f"{what}, batch {m['b']} ({m['preset']})"


def _latency_source(meta: dict[str, Any]) -> str:
    lat = meta.get("latency", {})
    if lat.get("mode") == "lut":
        return "latency from a lookup table"
    threads = lat.get("threads", 1)
    where = f"{lat.get('device', 'cpu')}, {threads} thread{'s' if threads != 1 else ''}"
    return f"latency measured on {where}" + (f" ({lat['host']})" if lat.get("host") else "")


def _context(study: Any, frame: pd.DataFrame, baselines: list[dict[str, Any]]) -> list[str]:
    """Data, fidelity, resolutions and latency source of a study, as short phrases."""
    meta = study.user_attrs.get("nasctl", {})
    trained = frame[frame["accuracy"].notna()] if "accuracy" in frame else frame
    parts = [
        f"data {meta.get('data', '?')}",
        f"fidelity {_fidelity_words(str(meta.get('fidelity', '?')))}",
        f"candidates at {_resolutions(trained['arch'] if 'arch' in trained else pd.Series())}",
    ]
    if baselines:
        parts.append(f"baselines at {_resolutions(pd.Series([b.get('arch') for b in baselines]))}")
    parts.append(_latency_source(meta))
    return parts


def pareto_title(study: Any, frame: pd.DataFrame, baselines: list[dict[str, Any]]) -> str:
    """pareto.png's title: what is plotted, then on what data, fidelity, resolution and
    latency source it was found."""
    unit = study_unit(study)
    context = _context(study, frame, baselines)
    return (
        f"study {study.study_name}: accuracy vs {TARGET_COLUMNS[unit][1]}\n"
        + ", ".join(context[:2])
        + "\n"
        + ", ".join(context[2:])
    )


def next_steps(study: str, out: Path, storage: str | None = None) -> list[str]:
    """The commands that follow a search: retrain the front against the baselines, then
    export compare's winner with its trained weights."""
    where = f" --storage {storage}" if storage else ""
    return [
        f"nasctl compare --study {study} --runs {out}{where}",
        f"nasctl export --study {study} --runs {out}{where} --compare-best -f onnx "
        f"-o {out / study / 'export'}",
    ]


def _ms(row: dict[str, Any] | Any) -> str:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k, None)
    ms, p10, p90 = get("latency_ms"), get("latency_p10_ms"), get("latency_p90_ms")
    if ms is None or pd.isna(ms):
        return "-"
    if p10 is None or p90 is None or pd.isna(p10) or pd.isna(p90):
        return f"{ms:.3f}"
    return f"{ms:.3f} ({p10:.3f}-{p90:.3f})"


def search_report(
    study: Any,
    frame: pd.DataFrame,
    front: pd.DataFrame,
    baselines: list[dict[str, Any]],
    command: str,
    next_commands: list[str],
) -> str:
    """A search as Markdown (``report.md`` beside trials.csv): how it was run, the front
    with full arch strings, the baselines with their latency spread, and what to run next."""
    meta = study.user_attrs.get("nasctl", {})
    done = frame[frame["state"] == "COMPLETE"]
    feasible = done["feasible"].fillna(False).astype(bool)
    budgets = {k: v for k, v in meta.get("budgets", {}).items() if v is not None}
    units = {"latency_ms": "ms latency", "mmacs": "M MACs", "mparams": "M params"}
    rule = meta.get("latency_budget")
    said = []
    for key, value in budgets.items():
        text = f"at most {value:.4g} {units.get(key, key)}"
        if key == "latency_ms" and rule:
            text += (
                f" ({rule['rule']}: {rule['fastest']} {rule['fastest_ms']:.3f} ms at "
                f"{rule['resolution']} px, less {rule['percent_under']:g}%)"
            )
        said.append(text)
    lines = [
        f"# nasctl search: study {study.study_name}",
        "",
        f"Reproduce: `{command}`",
        "",
        "Setting: " + "; ".join(_context(study, frame, baselines)) + ".",
        f"Budgets: {'; '.join(said) if said else 'none'}.",
        "",
        f"Trials: {len(done)} finished ({int(feasible.sum())} within budget, "
        f"{int((~feasible).sum())} over budget and not trained), "
        f"{int((frame['state'] == 'FAIL').sum())} failed; front of {len(front)}.",
        "",
        "Accuracy is validation top-1 at the search's fidelity (a short training): it ranks "
        "candidates, it is not their final accuracy. `nasctl compare` retrains the front "
        "and the baselines with one recipe and times them together.",
        "",
        "## Pareto front",
        "",
    ]
    if front.empty:
        lines.append("No feasible trained trial yet.")
    else:
        lines += [
            "| trial | top-1 | latency ms (p10-p90) | MACs (M) | params (M) | arch |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in front.itertuples():
            lines.append(
                f"| {int(r.number)} | {r.accuracy:.4f} | {_ms(r)} | {r.macs / 1e6:.2f} | "
                f"{r.params / 1e6:.3f} | `{r.arch}` |"
            )
    lines += ["", "## Baselines", ""]
    if not baselines:
        lines.append("None trained in this study (--no-baselines).")
    else:
        lines += [
            "Timed together in interleaved rounds with MobileNetV2 in every round; x V2 is "
            "the median ratio to that MobileNetV2 (1.000 for itself, up to noise).",
            "",
            "| model | top-1 | latency ms (p10-p90) | x V2 | MACs (M) | params (M) | seconds |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for b in baselines:
            ratio = b.get("ratio_to_v2")
            seconds = b.get("seconds")
            lines.append(
                f"| {b['name']} | {b['accuracy']:.4f} | {_ms(b)} | "
                f"{'-' if ratio is None else f'{ratio:.3f}'} | {b['macs'] / 1e6:.2f} | "
                f"{b['params'] / 1e6:.3f} | {'-' if seconds is None else f'{seconds:.0f}'} |"
            )
        own = [b.get("ratio_to_v2") for b in baselines if b["name"] == "mobilenet_v2"]
        if own and own[0] is not None:
            lines += [
                "",
                f"MobileNetV2's own x V2 is {own[0]:.3f}: its distance from 1 is the noise of "
                "this measurement (a difference between two baselines smaller than that is "
                "not a difference).",
            ]
    lines += [
        "",
        "Files: trials.csv (every trial), pareto.csv (the front), baselines.csv, pareto.png.",
        "",
        "## Next",
        "",
        "```",
        *next_commands,
        "```",
    ]
    return "\n".join(lines) + "\n"
