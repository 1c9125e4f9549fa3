"""`nasctl search`: the multi-objective architecture search, with a live view."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from estimators import Preset
from nasctl._app import (
    OldRunsOption,
    OutputFormat,
    RunsOption,
    app,
    check_output,
    console,
    err_console,
    guarded,
    renamed,
)
from nasctl._cmd_results import print_front
from nasctl._data_options import DataMode, DataModeOption
from nasctl._device_options import Precision, PrecisionOption, training_device
from results import AccuracyMode, Sampler, SearchTarget, non_dominated_mask

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from results import BaselineStep, Event


class LatencySource(StrEnum):
    """Where a candidate's latency comes from."""

    measured = "measured"
    lut = "lut"


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


class _LiveView:
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


@app.command()
@guarded
def search(
    target: Annotated[
        SearchTarget, typer.Option(help="The cost to minimise beside maximising accuracy.")
    ] = SearchTarget.latency,
    data: Annotated[
        str,
        typer.Option(
            help="digits (embedded), cifar10 (download), a CIFAR-10 batches dir "
            "or an ImageFolder dir."
        ),
    ] = "digits",
    space: Annotated[
        Path | None,
        typer.Option(help="A space file (TOML) or a built-in space: default, photos, tiny."),
    ] = None,
    trials: Annotated[
        int,
        typer.Option(
            help="Finished trials the study should reach (halving: new candidates; their "
            "promotions come on top)."
        ),
    ] = 12,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting new trials after this many seconds.")
    ] = None,
    sampler: Annotated[Sampler, typer.Option(help="Optuna sampler.")] = Sampler.nsga2,
    population: Annotated[int, typer.Option(help="NSGA-II population size.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the sampler, data split and training.")] = 0,
    fidelity: Annotated[
        Preset, typer.Option(help="Training preset for candidates: search (low) or full.")
    ] = Preset.search,
    epochs: Annotated[
        int | None,
        typer.Option(help="Train each candidate for exactly E epochs (instead of --images)."),
    ] = None,
    images: Annotated[
        int,
        typer.Option(
            help="Fidelity: training images per candidate. At or above the training-set "
            "size: round(N / size) whole epochs; below it: one epoch of a seeded N-image subset."
        ),
    ] = 6000,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    baseline_resolution: Annotated[
        int | None,
        typer.Option(
            help="Input size (pixels) the four baselines are trained and timed at, here and "
            "in `nasctl compare`; give the size you will deploy at [default: the space's "
            "largest resolution]."
        ),
    ] = None,
    latency: Annotated[
        LatencySource,
        typer.Option(help="measured (time each candidate here) or lut (--lut table)."),
    ] = LatencySource.measured,
    lut: Annotated[
        Path | None, typer.Option(help="Latency lookup table (from `nasctl lut build`).")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Where candidates train: cpu, cuda, cuda:N or auto (one search worker per "
            "GPU: --device cuda:1). --latency-device is where latency is measured.",
        ),
    ] = "cpu",
    precision: PrecisionOption = Precision.auto,
    data_mode: DataModeOption = DataMode.AUTO,
    latency_device: Annotated[
        str,
        typer.Option(
            help="Where latency is measured: cpu or cuda[:N] (--device is where candidates train)."
        ),
    ] = "cpu",
    threads: Annotated[
        int | None,
        typer.Option(
            help="Training threads (default: this machine's cores divided by the live "
            "workers on it); latency uses --latency-threads."
        ),
    ] = None,
    latency_threads: Annotated[int, typer.Option(help="Threads for latency measurement.")] = 1,
    max_latency: Annotated[
        str | None,
        typer.Option(
            help="Hard budget on latency: milliseconds (2.5), or fastest-baseline / "
            "fastest-baseline-N% (N% under the fastest of the four baselines, timed at the "
            "search's baseline resolution when it starts; the chosen budget is printed and "
            "kept in the study)."
        ),
    ] = None,
    max_flops: Annotated[float | None, typer.Option(help="Hard budget: MACs, in millions.")] = None,
    max_params: Annotated[
        float | None, typer.Option(help="Hard budget: parameters, in millions.")
    ] = None,
    study: Annotated[str, typer.Option(help="Study name (re-run to resume it).")] = "search",
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL (postgresql://..., sqlite:///f.db) or .journal "
            "file; default RUNS/STUDY.journal."
        ),
    ] = None,
    runs: RunsOption = Path("runs"),
    baselines: Annotated[
        bool, typer.Option(help="Train the four MobileNet baselines once per study.")
    ] = True,
    accuracy: Annotated[
        AccuracyMode,
        typer.Option(
            help="How candidates are scored: train (each with the full per-candidate "
            "budget), halving (successive halving on Pareto rank: many at a small budget, "
            "the best 1/eta promoted up to the full one), supernet (no training: scored by "
            "--supernet, trained once with `nasctl supernet train`)."
        ),
    ] = AccuracyMode.train,
    eta: Annotated[
        int | None,
        typer.Option(
            help="Halving: promote the best 1/eta of each rung; budgets grow x eta [default: 3]."
        ),
    ] = None,
    min_fidelity: Annotated[
        float | None,
        typer.Option(
            help="Halving: the lowest rung's share of the per-candidate budget (--images or "
            "--epochs) [default: 1/eta^2]."
        ),
    ] = None,
    supernet: Annotated[
        Path | None,
        typer.Option(help="Supernet file for --accuracy supernet (from `nasctl supernet train`)."),
    ] = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            help="The final front-and-baselines table: table, or json / csv on stdout (the "
            "live view then goes to stderr).",
        ),
    ] = OutputFormat.table,
    old_runs: OldRunsOption = None,
) -> None:
    """Search architectures: maximise accuracy on --data, minimise --target.

    Each candidate is priced first (MACs and params analytically, latency from --lut or
    one measurement); a candidate over a --max-* budget is recorded but never trained.
    The four baselines are trained once per study with the same recipe, and timed
    together (interleaved rounds, MobileNetV2 in every round); --max-latency
    fastest-baseline-5% sets the budget 5% under the fastest of them. Re-running the
    same command resumes the study; Ctrl-C stops after recording what is done. Several
    processes with the same --study and --storage work on one study together. Writes
    RUNS/STUDY/{trials.csv, pareto.csv, baselines.csv, pareto.png, report.md} and prints
    the commands that come next (compare, export).

    --accuracy halving trains every new candidate on a small share of the budget and
    promotes the best-ranked 1/eta (Pareto rank, then crowding) to budgets eta times
    larger, up to the full one; the front uses each architecture's highest rung.
    --accuracy supernet scores each candidate with a supernet trained once over the same
    space and data (seconds, no training); baselines outside the space are trained.

    --device is where candidates train (cuda: mixed precision, see docs/gpu.md);
    --latency-device is where latency is measured.

    Example: `nasctl search --data digits --trials 12 --max-latency fastest-baseline-5%`
    """
    from estimators import LatencyConfig, get_recipe
    from results import (
        SEARCH_LATENCY,
        TARGET_UNITS,
        SearchConfig,
        SearchError,
        parse_max_latency,
        run_search,
    )

    out = renamed(runs, old_runs, "--runs", "--out")
    max_latency_ms, under_fastest_pct = parse_max_latency(max_latency)
    training_device(device, precision)  # a missing GPU: one line, before any work
    check_output(out, "--runs", directory=True)
    if storage is not None and storage.endswith(".journal") and "://" not in storage:
        check_output(Path(storage), "--storage", directory=False)
    if accuracy is AccuracyMode.supernet and supernet is None:
        raise SearchError(
            "--accuracy supernet needs --supernet FILE (from `nasctl supernet train`)"
        )
    if accuracy is not AccuracyMode.supernet and supernet is not None:
        raise SearchError(
            f"--supernet only applies to --accuracy supernet (got --accuracy {accuracy.value})"
        )
    if accuracy is not AccuracyMode.halving:
        for flag, value in (("--eta", eta), ("--min-fidelity", min_fidelity)):
            if value is not None:
                raise SearchError(
                    f"{flag} only applies to --accuracy halving (got --accuracy {accuracy.value})"
                )
    if latency is LatencySource.lut and lut is None:
        raise SearchError("--latency lut needs a table: --lut FILE (from `nasctl lut build`)")
    recipe = get_recipe(fidelity.value, epochs=epochs, batch_size=batch_size)
    config = SearchConfig(
        study=study,
        target=target,
        space_path=space,
        data=data,
        data_mode=data_mode.value,
        trials=trials,
        timeout=timeout,
        sampler=sampler,
        population=population,
        seed=seed,
        recipe=recipe,
        fidelity=fidelity.value,
        images_per_candidate=None if epochs is not None else images,
        baseline_resolution=baseline_resolution,
        lut_path=lut if latency is LatencySource.lut else None,
        latency=LatencyConfig(
            rounds=SEARCH_LATENCY.rounds,
            repeats=SEARCH_LATENCY.repeats,
            min_warmup=SEARCH_LATENCY.min_warmup,
            max_warmup=SEARCH_LATENCY.max_warmup,
            device=latency_device,
            threads=latency_threads,
        ),
        threads=threads,
        max_latency_ms=max_latency_ms,
        max_latency_under_fastest_pct=under_fastest_pct,
        max_mmacs=max_flops,
        max_mparams=max_params,
        baselines=baselines,
        accuracy=accuracy,
        eta=3 if eta is None else eta,
        min_fidelity=min_fidelity,
        supernet_path=supernet,
        device=device,
        precision=precision.value,
    )
    shown = console if fmt is OutputFormat.table else err_console
    view = _LiveView(target, trials, shown)
    interrupted = False
    with view.live, view.ctrl_c.installed():
        try:
            result = run_search(config, out, storage, view.on_event, [view.on_trial])
        except KeyboardInterrupt:
            interrupted = True
    shown.print()
    if interrupted:
        err_console.print(
            "[yellow]interrupted:[/yellow] finished trials are saved; "
            "re-run the same command to resume"
        )
        from results import open_existing

        result = open_existing(study, out, storage)
    try:
        _write_outputs(result, out, storage, TARGET_UNITS[target], fmt, shown)
    except OSError as exc:  # a full disk, a read-only folder: the study itself is saved
        reason = exc.strerror or str(exc)
        raise SearchError(
            f"cannot write the outputs to {str(out / study)!r}: {reason}; the study is saved, "
            "`nasctl results show` reads it"
        ) from None
    if interrupted:
        raise typer.Exit(130)


def _write_outputs(
    study: optuna.Study,
    out: Path,
    storage: str | None,
    unit: str,
    fmt: OutputFormat,
    shown: Console,
) -> None:
    """The end of a search: trials.csv, pareto.csv, baselines.csv, pareto.png and
    report.md in OUT/STUDY; the front and the baselines printed (as ``fmt``); then what
    to run next."""
    import pandas as pd

    from results import (
        baselines_of,
        front_frame,
        next_steps,
        pareto_title,
        plot_front,
        search_report,
        trials_frame,
    )

    folder = out / study.study_name
    folder.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    frame.to_csv(folder / "trials.csv", index=False)
    front = front_frame(frame, unit)
    front.to_csv(folder / "pareto.csv", index=False)
    baselines = baselines_of(study)
    pd.DataFrame(baselines).to_csv(folder / "baselines.csv", index=False)
    title = pareto_title(study, frame, baselines)
    budget = study.user_attrs.get("nasctl", {}).get("budgets", {}).get(unit)
    plot = plot_front(frame, baselines, unit, folder / "pareto.png", title, budget)
    steps = next_steps(study.study_name, out, storage)
    command = "nasctl " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = folder / "report.md"
    report.write_text(
        search_report(study, frame, front, baselines, command, steps), encoding="utf-8"
    )
    print_front(front, baselines, unit, fmt, folder / "pareto.csv")
    shown.print(
        f"wrote {folder / 'trials.csv'}, {folder / 'pareto.csv'}, {plot}, {report}",
        highlight=False,
        soft_wrap=True,
    )
    shown.print("next: retrain the front against the baselines, then export the winner:")
    for step in steps:
        shown.print(f"  {step}", highlight=False, soft_wrap=True)
