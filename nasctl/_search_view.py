"""`nasctl search`'s live view: baselines and trials done, the time left, what runs now
and the current front, redrawn as the search reports events; Ctrl-C at a safe point."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from nasctl._output import console
from results import SearchTarget, non_dominated_mask

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from results import BaselineStep, Event


class _CtrlC:
    """Ctrl-C takes effect at the next safe point (a training batch, a trial start, the
    end of a trial), never in the middle of a storage write, which would leave the
    journal's lock behind. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


#: A budget's key -> how a trial line names it, and its unit.
_BUDGETS = {"latency_ms": ("latency", " ms"), "mmacs": ("MACs", "M"), "mparams": ("params", "M")}


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class LiveView:
    """Baselines and trials done, elapsed time and an estimate of the time left, what
    runs now and the front. Each finished baseline (and, in a log file, each trial) is
    also a line of its own. ``out`` is stdout, or stderr when the final table is JSON or
    CSV for a program to read."""

    def __init__(self, target: SearchTarget, trials: int, out: Console = console) -> None:
        self.target, self.trials, self.out = target, trials, out
        self.started = time.monotonic()
        self.status = "starting"
        self.front: list[FrozenTrial] = []
        #: Baselines this process trains: the one now, its start, and seconds per one done.
        self.baseline: BaselineStep | None = None
        self.baseline_started = 0.0
        self.baseline_seconds: list[float] = []
        #: Seconds per trial finished by this process (reused and refused ones included),
        #: and how many of them trained (or were scored): refused ones take no time, so
        #: an estimate waits for one that trained.
        self.trial_seconds: list[float] = []
        self.trained = 0
        self.counts = {
            "done": 0,
            "feasible": 0,
            "infeasible": 0,
            "failed": 0,
            "reused": 0,
            "promoted": 0,
        }
        self.live = Live(self.render(), console=out, refresh_per_second=2, transient=False)
        self.ctrl_c = _CtrlC()

    def on_event(self, event: Event) -> None:
        if event.kind not in ("note", "warning", "budget", "baseline-done"):
            self.ctrl_c.check()
        if event.kind == "baseline" and event.progress is not None:
            if self.baseline is None or self.baseline.name != event.progress.name:
                self.baseline_started = time.monotonic()
            self.baseline = event.progress
            self.status = event.message
        elif event.kind == "baseline-done":
            step = event.progress
            self.baseline_seconds.append(time.monotonic() - self.baseline_started)
            self.baseline = step
            self.live.console.print(self.baseline_line(step), highlight=False, soft_wrap=True)
        elif event.kind == "budget":
            self.live.console.print(event.message, highlight=False, soft_wrap=True)
        elif event.kind == "training" and event.progress is not None:
            p = event.progress
            self.status = (
                f"training {event.message}: epoch {p.epoch + 1}/{p.epochs} batch "
                f"{p.batch}/{p.batches} loss {p.loss:.3f} {p.images_per_second:,.0f} img/s"
            )
        elif event.kind == "warning":
            self.live.console.print(f"[yellow]warning:[/yellow] {event.message}", soft_wrap=True)
        elif event.kind == "note":
            self.live.console.print(f"[yellow]note:[/yellow] {event.message}")
        else:
            self.status = event.message
        self.live.update(self.render())

    def on_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from optuna.trial import TrialState

        from results import ACC_COST

        if trial.duration is not None:
            self.trial_seconds.append(trial.duration.total_seconds())
        a = trial.user_attrs
        self.trained += a.get("train_seconds") is not None or a.get("score_seconds") is not None
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        promoted = [t for t in complete if t.user_attrs.get("promoted_from") is not None]
        self.counts = {
            "done": len(complete) - len(promoted),
            "feasible": sum(bool(t.user_attrs.get("feasible")) for t in complete),
            "infeasible": sum(not t.user_attrs.get("feasible", True) for t in complete),
            "failed": sum(t.state is TrialState.FAIL for t in trials),
            "reused": sum(t.user_attrs.get("reused_from") is not None for t in complete),
            "promoted": len(promoted),
        }
        # Each architecture once, at its highest rung (halving), as the final front.
        latest: dict[str, FrozenTrial] = {}
        for t in complete:
            if not t.user_attrs.get("feasible"):
                continue
            arch = str(t.user_attrs.get("arch"))
            seen = latest.get(arch)
            if seen is None or t.user_attrs.get("rung", 0) > seen.user_attrs.get("rung", 0):
                latest[arch] = t
        points = list(latest.values())
        on = non_dominated_mask(np.array([t.values for t in points]).reshape(-1, 2), ACC_COST)
        self.front = sorted(
            (t for t, keep in zip(points, on, strict=True) if keep), key=lambda t: t.values[1]
        )
        self.status = ""  # the finished trial's last batch is not what runs now
        self.live.update(self.render())
        if not self.out.is_terminal:  # a log file: Live draws only at the end, so a line each
            self.out.print(self.trial_line(trial), highlight=False, soft_wrap=True)
        self.ctrl_c.check()

    def baseline_line(self, step: BaselineStep) -> str:
        """A finished baseline: its accuracy, cost and spread in the live view's words."""
        from results import TARGET_LABELS

        r = step.record or {}
        parts = [f"accuracy {r.get('accuracy', float('nan')):.4f}"]
        if r.get("latency_ms") is not None:
            spread = ""
            if r.get("latency_p10_ms") is not None and r.get("latency_p90_ms") is not None:
                spread = f" (p10-p90 {r['latency_p10_ms']:.3f}-{r['latency_p90_ms']:.3f})"
            parts.append(f"latency (ms) {r['latency_ms']:.4g}{spread}")
        if self.target is not SearchTarget.latency:
            key = {SearchTarget.flops: "mmacs", SearchTarget.params: "mparams"}[self.target]
            parts.append(f"{TARGET_LABELS[self.target]} {r.get(key, float('nan')):.4g}")
        seconds = self.baseline_seconds[-1] if self.baseline_seconds else 0.0
        return (
            f"baseline {step.name} ({step.index}/{step.total}): {', '.join(parts)}  "
            f"[{_minutes(seconds)}{self.eta_text(', ')}]"
        )

    def eta_seconds(self) -> tuple[float | None, str]:
        """Seconds left (None before anything was measured) and what the figure rests on:
        baselines left x seconds per baseline, plus trials left x seconds per trial
        (until a trial is done, a baseline's time stands in for it)."""
        per_baseline = float(np.mean(self.baseline_seconds)) if self.baseline_seconds else None
        per_trial = float(np.mean(self.trial_seconds)) if self.trained else None
        baselines_left = 0
        if self.baseline is not None:
            baselines_left = self.baseline.total - len(self.baseline_seconds)
        trials_left = max(0, self.trials - self.counts["done"])
        if baselines_left and per_baseline is None:
            return None, ""
        trial_cost = per_trial if per_trial is not None else per_baseline
        if trials_left and trial_cost is None:
            return None, ""
        left = baselines_left * (per_baseline or 0.0) + trials_left * (trial_cost or 0.0)
        basis = []
        if baselines_left and per_baseline is not None:
            basis.append(f"{_minutes(per_baseline)} per baseline")
        if trials_left and per_trial is not None:
            basis.append(f"{_minutes(per_trial)} per trial")
        elif trials_left:
            basis.append("a trial taken as long as a baseline")
        return left, ", ".join(basis)

    def eta_text(self, lead: str = "  ") -> str:
        left, basis = self.eta_seconds()
        if left is None or left < 1:  # nothing measured yet, or nothing left
            return ""
        return f"{lead}about {_minutes(left)} left" + (f" ({basis})" if basis else "")

    def trial_line(self, trial: FrozenTrial) -> str:
        """One finished trial as a plain line, with the study's counts and the time."""
        from optuna.trial import TrialState

        from results import TARGET_LABELS

        a = trial.user_attrs
        if trial.state is not TrialState.COMPLETE:
            what = f"failed: {a.get('fail_reason', trial.state.name.lower())}"
        elif not a.get("feasible", True):
            over = a.get("violations", {})
            what = "over budget: " + ", ".join(
                f"{_BUDGETS[k][0]} +{v:.3g}{_BUDGETS[k][1]}" if k in _BUDGETS else f"{k} +{v:.3g}"
                for k, v in over.items()
            )
        else:
            cost = f"{TARGET_LABELS[self.target]} {trial.values[1]:.4g}"
            what = f"accuracy {trial.values[0]:.4f}, {cost}"
            if a.get("reused_from") is not None:
                what += f" (reused trial {a['reused_from']})"
        c = self.counts
        return (
            f"trial {trial.number}: {what}  [{c['done']}/{self.trials} done, {c['feasible']} "
            f"feasible, front {len(self.front)}, {(time.monotonic() - self.started) / 60:.1f} min"
            f"{self.eta_text(', ')}]"
        )

    def render(self) -> Table:
        from results import TARGET_LABELS

        grid = Table.grid(padding=(0, 2))
        elapsed = time.monotonic() - self.started
        c = self.counts
        b = self.baseline
        if b is not None and len(self.baseline_seconds) < b.total:
            grid.add_row(
                f"[bold]baselines[/bold] {len(self.baseline_seconds)}/{b.total} done, "
                f"now {b.name} ({b.index}/{b.total}), trained before the trials"
            )
        grid.add_row(
            f"[bold]trials[/bold] {c['done']}/{self.trials} done, {c['feasible']} feasible, "
            f"{c['infeasible']} infeasible, {c['failed']} failed, {c['reused']} reused"
            + (f", {c['promoted']} promotions" if c["promoted"] else "")
            + f"  [bold]elapsed[/bold] {elapsed / 60:.1f} min"
            + self.eta_text()
        )
        if self.status:
            grid.add_row(f"[dim]{self.status[:150]}[/dim]")
        if self.front:
            front = Table(title="current front", title_justify="left")
            for col in ("trial", "accuracy", TARGET_LABELS[self.target], "arch"):
                front.add_column(col)
            for t in self.front[:8]:
                arch = str(t.user_attrs.get("arch", ""))
                front.add_row(
                    str(t.number),
                    f"{t.values[0]:.4f}",
                    f"{t.values[1]:.4g}",
                    arch if len(arch) <= 60 else arch[:57] + "...",
                )
            grid.add_row(front)
        return grid
