"""Inference latency of an architecture or module, measured the same way every time.

Conventions: batch 1, eval mode, ``torch.inference_mode``; times are **microseconds**
(float) of one forward call measured with ``time.perf_counter_ns`` (CUDA: synchronised).
Statistics are over all timed calls of all rounds; medians and percentiles, not means,
are the figures to trust on a shared machine (REFERENCE.md "Latency on a shared CPU").

Protocol (``LatencyConfig``): explicit thread count; warm-up in chunks until two
consecutive chunk medians agree within ``steady_tolerance`` (the first calls are 1.3-2x
slower); then ``rounds`` rounds, each giving every model being compared the time of
``repeats`` calls of the slowest one, interleaved (the order rotates each round),
optionally with a fixed reference model timed in every round so that a ratio to it
cancels machine drift. Only one measurement
runs at a time per machine: ``latency_lock`` is an ``fcntl`` file lock in the temp dir
that every nasctl process takes before timing anything.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from estimators._host import LatencyError, LockTimeout, default_lock_path, host_info, latency_lock
from estimators._options import Backend
from search_space import ArchSpec, Part, build_model, cpu_seeded, format_arch, max_threads
from search_space._blocks import fold_batchnorm
from search_space._builder import part_module
from search_space._spec import BlockSpec, HeadSpec, StemSpec

__all__ = [
    "Backend",
    "LatencyConfig",
    "LatencyError",
    "LatencyResult",
    "LockTimeout",
    "Target",
    "default_lock_path",
    "fold_batchnorm",
    "host_info",
    "latency_lock",
    "measure",
    "measure_many",
    "part_target",
    "summarize",
]


@dataclass(frozen=True)
class LatencyConfig:
    """How to time. Defaults: 1 thread (the most repeatable figure on a shared machine,
    and a phone's single big core is the usual target), 5 rounds x 20 calls of the slowest
    model; with ``equal_windows`` faster models (and the reference) get more calls so that
    each spends the same time per round."""

    backend: Backend = Backend.TORCH
    device: str = "cpu"
    threads: int = 1
    rounds: int = 5
    repeats: int = 20
    min_warmup: int = 10
    max_warmup: int = 200
    steady_tolerance: float = 0.05
    equal_windows: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_fields()
        self.check_runnable()

    @classmethod
    def recorded(cls, protocol: dict[str, Any]) -> LatencyConfig:
        """A protocol read back from a file (a lookup table built on another machine):
        its fields are checked, but not whether this host could measure with it; that
        is asked when measuring (``check_runnable``)."""
        unknown = sorted(set(protocol) - {f.name for f in fields(cls)})
        if unknown:
            raise LatencyError(f"unknown latency protocol field(s): {', '.join(unknown)}")
        config = object.__new__(cls)
        for f in fields(cls):
            object.__setattr__(config, f.name, protocol.get(f.name, f.default))
        config._check_fields()
        return config

    def check_runnable(self) -> None:
        """Refuse what this host cannot measure with: a CUDA device it lacks, more
        threads than it allows. Asked when a config is made and before every measurement."""
        if self.threads > max_threads():  # ONNX Runtime segfaults at 100,000
            raise LatencyError(
                f"threads must be at most {max_threads()} (4 per core here), got {self.threads}"
            )
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise LatencyError(f"device {self.device!r} requested but no CUDA device is present")

    def _check_fields(self) -> None:
        """The rules that hold on every host."""
        try:
            object.__setattr__(self, "backend", Backend(self.backend))
        except ValueError:
            allowed = ", ".join(b.value for b in Backend)
            raise LatencyError(f"backend must be one of {allowed}, got {self.backend!r}") from None
        for name in ("threads", "rounds", "repeats", "min_warmup"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LatencyError(f"{name} must be a positive integer, got {value!r}")
        if self.max_warmup < self.min_warmup:
            raise LatencyError(
                f"max_warmup must be >= min_warmup ({self.min_warmup}), got {self.max_warmup}"
            )
        if not 0 < self.steady_tolerance < 1:
            raise LatencyError(f"steady_tolerance must be in (0, 1), got {self.steady_tolerance}")
        if not isinstance(self.device, str):
            raise LatencyError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        device = self.device.strip().lower()
        if device != "cpu" and not device.startswith("cuda"):
            raise LatencyError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if device.startswith("cuda") and self.backend is Backend.ONNXRUNTIME:
            raise LatencyError("backend onnxruntime runs on device cpu only here")
        object.__setattr__(self, "device", device)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["backend"] = self.backend.value
        return out


@dataclass(frozen=True)
class Target:
    """A module to time and the shape of its batch-1 input.

    ``call``, when given, is a ready callable (an exported file run by its own runtime,
    ``results.load_exported``) that is timed as it is: the backend's preparation (BatchNorm
    folding, tracing, ONNX export) is skipped, ``module`` is not run, and the thread count
    of a runtime other than torch is the caller's to set.

    ``private``: ``module`` was built for this timing alone (from a spec or a part), so
    it is prepared in place (BatchNorm folded, eval mode, no gradients) instead of being
    copied first; a deep copy costs about as much as building the module again."""

    name: str
    module: nn.Module | None
    input_shape: tuple[int, ...]
    call: Callable[[torch.Tensor], object] | None = None
    private: bool = False


@dataclass(frozen=True)
class LatencyResult:
    """One model's timing. Times in microseconds; ``iqr_us`` = p75 - p25.

    ``ratio_to_reference`` is the median over rounds of (this model's round median /
    the reference's round median of the same round); None without a reference."""

    name: str
    median_us: float
    p10_us: float
    p90_us: float
    iqr_us: float
    mean_us: float
    count: int
    warmup: int
    backend: str
    device: str
    threads: int
    rounds: int
    ratio_to_reference: float | None = None
    reference: str | None = None
    reference_median_us: float | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def iqr_ratio(self) -> float:
        """IQR / median: the spread warning of torch.utils.benchmark (10% and 25%)."""
        return self.iqr_us / self.median_us if self.median_us > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["iqr_ratio"] = self.iqr_ratio
        return out


def summarize(samples_us: Sequence[float]) -> dict[str, float]:
    """median, p10, p90, IQR, mean (and count) of timings in microseconds."""
    if len(samples_us) == 0:
        raise LatencyError("samples must hold at least one timing")
    a = np.asarray(samples_us, dtype=float)
    p10, p25, p50, p75, p90 = np.percentile(a, [10, 25, 50, 75, 90])
    return {
        "median_us": float(p50),
        "p10_us": float(p10),
        "p90_us": float(p90),
        "iqr_us": float(p75 - p25),
        "mean_us": float(a.mean()),
        "count": len(a),
    }


# --- preparing a model for a backend ----------------------------------------------------


def _seeded_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen)


def _runner(target: Target, config: LatencyConfig) -> Callable[[], object]:
    """A no-argument callable that runs one forward of the prepared model."""
    x = _seeded_input(target.input_shape, config.seed)
    call = target.call
    if call is not None:
        return lambda: call(x)
    if target.module is None:
        raise LatencyError(f"target {target.name!r} has neither a module nor a callable")
    if config.backend is Backend.ONNXRUNTIME:
        return _ort_runner(target.module, x, config.threads, target.private)
    device = torch.device(config.device)
    model = fold_batchnorm(target.module, inplace=target.private).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    x = x.to(device)
    if config.backend is Backend.TORCHSCRIPT:
        with torch.no_grad(), warnings_off():
            # No check_trace: it traces the model a second time to compare the graphs, and
            # what is timed here is speed (an export checks the traced file's outputs).
            traced = torch.jit.trace(model, (x,), check_trace=False)
            model = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    def run() -> object:
        out = model(x)
        if sync is not None:
            sync()
        return out

    return run


def _ort_runner(
    module: nn.Module, x: torch.Tensor, threads: int, private: bool
) -> Callable[[], object]:
    import onnxruntime as ort

    buf = io.BytesIO()
    model = (module if private else copy.deepcopy(module)).eval()
    with warnings_off():
        # A BytesIO target is supported, though the stubs name paths only.
        torch.onnx.export(
            model,
            (x,),
            buf,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=17,
            input_names=["x"],
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}

    def run() -> object:
        return session.run(None, feed)

    return run


@contextlib.contextmanager
def warnings_off() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- targets ----------------------------------------------------------------------------


def as_target(item: ArchSpec | Target, seed: int = 0) -> Target:
    if isinstance(item, Target):
        return item
    if isinstance(item, ArchSpec):
        shape = (1, 3, item.resolution, item.resolution)
        return Target(format_arch(item), build_model(item, seed), shape, private=True)
    raise LatencyError(
        f"a model to time must be an ArchSpec or a Target, got {type(item).__name__}"
    )


def part_target(part: Part, num_classes: int, seed: int = 0) -> Target:
    """One stem, block or head built alone, with its own input: what a lookup table times."""
    if not isinstance(part.spec, StemSpec | BlockSpec | HeadSpec):
        raise LatencyError(
            f"part.spec must be a stem, block or head, got {type(part.spec).__name__}"
        )
    with cpu_seeded(seed):
        module = part_module(part, num_classes)
    shape = (1, part.in_channels, part.in_size, part.in_size)
    return Target(part.name, module, shape, private=True)


# --- timing -------------------------------------------------------------------------------


def _time_calls(run: Callable[[], object], n: int) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        run()
        out.append((clock() - t0) / 1000.0)
    return out


def _warm_up(run: Callable[[], object], config: LatencyConfig) -> tuple[int, float]:
    """Run chunks until two consecutive chunk medians agree; return the calls spent and
    the last chunk's median (us)."""
    chunk = max(3, config.min_warmup // 2)
    done, previous = 0, None
    while done < config.max_warmup:
        current = float(np.median(_time_calls(run, chunk)))
        done += chunk
        if (
            previous is not None
            and done >= config.min_warmup
            and abs(current - previous) <= config.steady_tolerance * previous
        ):
            break
        previous = current
    return done, current


def _calls_per_round(estimate_us: list[float], config: LatencyConfig) -> list[int]:
    """``repeats`` calls each, or, with ``equal_windows``, as many as give every model the
    same time per round as the slowest one's ``repeats`` calls (capped): a model and the
    reference then see the same stretch of the machine's drift."""
    if not config.equal_windows:
        return [config.repeats] * len(estimate_us)
    window = config.repeats * max(estimate_us)
    cap = config.repeats * MAX_WINDOW_FACTOR
    return [min(cap, max(config.repeats, round(window / max(e, 1e-3)))) for e in estimate_us]


#: equal_windows gives a fast model at most this many times ``repeats`` calls per round.
MAX_WINDOW_FACTOR = 100


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    denormal = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if denormal:
            torch.set_flush_denormal(False)


def measure_many(
    models: Sequence[ArchSpec | Target],
    config: LatencyConfig | None = None,
    reference: ArchSpec | Target | None = None,
    names: Sequence[str] | None = None,
    lock_timeout: float | None = None,
) -> list[LatencyResult]:
    """Time several models in interleaved rounds (and a reference in every round).

    Holds the machine-wide latency lock for the whole call."""
    config = config or LatencyConfig()
    config.check_runnable()  # a protocol read from a file was not checked against this host
    if not models:
        raise LatencyError("models must hold at least one model to time")
    if names is not None and len(names) != len(models):
        raise LatencyError(f"names must have one name per model ({len(models)}), got {len(names)}")
    targets = [as_target(m, config.seed) for m in models]
    if names is not None:
        targets = [replace(t, name=n) for n, t in zip(names, targets, strict=True)]
    ref = as_target(reference, config.seed) if reference is not None else None
    every = targets + ([ref] if ref is not None else [])
    versions = host_info()

    with latency_lock(timeout=lock_timeout), _threads(config.threads):
        try:
            runners = [_runner(t, config) for t in every]
        except (RuntimeError, ValueError) as exc:
            raise LatencyError(
                f"cannot prepare a model for backend {config.backend.value}: {exc}"
            ) from None
        samples: list[list[float]] = [[] for _ in every]
        round_medians: list[list[float]] = [[] for _ in every]
        with torch.inference_mode():
            warm, estimate = zip(*(_warm_up(r, config) for r in runners), strict=True)
            calls = _calls_per_round(list(estimate), config)
            for rnd in range(config.rounds):
                shift = rnd % len(every)
                for i in [*range(shift, len(every)), *range(shift)]:
                    times = _time_calls(runners[i], calls[i])
                    samples[i] += times
                    round_medians[i].append(float(np.median(times)))

    results = []
    for i, t in enumerate(targets):
        ratio = None
        if ref is not None:
            ratio = float(np.median(np.divide(round_medians[i], round_medians[-1])))
        results.append(
            LatencyResult(
                name=t.name,
                **summarize(samples[i]),  # type: ignore[arg-type]
                warmup=warm[i],
                backend=config.backend.value,
                device=config.device,
                threads=config.threads,
                rounds=config.rounds,
                ratio_to_reference=ratio,
                reference=ref.name if ref is not None else None,
                reference_median_us=float(np.median(samples[-1])) if ref is not None else None,
                versions=versions,
            )
        )
    return results


def measure(
    model: ArchSpec | Target,
    config: LatencyConfig | None = None,
    lock_timeout: float | None = None,
) -> LatencyResult:
    """Time one model (an ArchSpec, or a ``Target`` wrapping any module)."""
    return measure_many([model], config, lock_timeout=lock_timeout)[0]
