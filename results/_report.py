"""The front of a search as a table and a picture, drawn against the baselines."""

from __future__ import annotations

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
    "pick_trial",
    "plot_front",
    "save_accuracy_plot",
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
) -> Path:
    """Accuracy vs the target: every trained architecture, the front highlighted,
    baselines marked. Infeasible candidates are drawn at their cost on the x axis only
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
            front["cost"], front["accuracy"], s=40, c="tab:blue", label="Pareto front", zorder=4
        )
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
