"""Write one architecture (and its weights) in a form to ship, then prove the file works.

Formats: ``json`` (the spec), ``arch`` (the one-line string), ``py`` (standalone torch
source + a state_dict ``.pt`` next to it), ``torchscript`` (traced, optionally frozen),
``onnx`` (opset >= 17) and ``pt`` (state_dict + spec). Every format is read back after
writing: the text forms must parse to the same spec, the model forms must give the same
logits as nasctl's PyTorch model on one seeded random batch, within ``tolerance`` (max
absolute difference, 1e-4 by default, times the largest logit where that is above 1). A
mismatch is an ``ExportError``, not a warning.

ONNX uses the TorchScript-based exporter (``dynamo=False``): the torch.export-based one
needs ``onnxscript``, and the latency protocol (``estimators._latency``) exports the same
way, so what is measured is what is shipped.

Deployment metadata: with a :class:`Preprocessing` (from a training checkpoint's data
record), every model format carries the input resolution, mean/std and class names (ONNX
``metadata_props``, a TorchScript extra file ``nasctl.json``, the pt payload, constants in
the generated py); each also says whether its weights are trained. ``read_preprocessing``
reads them back from any exported file.

Latency hook: ``load_exported`` returns the callable that verification runs on the
exported file; the latency protocol can time that callable (``ExportResult.latency_backend``
names the matching ``estimators.Backend``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import runpy
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from estimators import Backend, LatencyConfig, LatencyResult, Target, measure
from results._codegen import standalone_source
from results._preprocessing import Preprocessing, PreprocessingError
from search_space import (
    ArchSpec,
    MobileNet,
    NasctlError,
    SpecError,
    build_model,
    format_arch,
    parse_arch,
)

__all__ = [
    "EXPORT_FORMAT",
    "MIN_OPSET",
    "TORCHSCRIPT_EXTRA",
    "CompareWinner",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "Preprocessing",
    "checkpoint_preprocessing",
    "compare_winner",
    "export_model",
    "load_exported",
    "load_pt",
    "read_checkpoint",
    "read_preprocessing",
]

#: Tag of the ``pt`` format's payload.
EXPORT_FORMAT = "nasctl-export/1"
#: Lowest ONNX opset accepted (issue 6 asks for 17 or later).
MIN_OPSET = 17
#: The TorchScript extra file holding the arch, weights and preprocessing record.
TORCHSCRIPT_EXTRA = "nasctl.json"


class ExportError(NasctlError):
    """An export that cannot be written or whose file does not reproduce the model."""


class ExportFormat(StrEnum):
    JSON = "json"
    ARCH = "arch"
    PY = "py"
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    PT = "pt"

    @property
    def default_name(self) -> str:
        """File name used when ``out`` is a directory."""
        return {
            ExportFormat.JSON: "model.json",
            ExportFormat.ARCH: "model.arch",
            ExportFormat.PY: "model.py",
            ExportFormat.TORCHSCRIPT: "model.torchscript.pt",
            ExportFormat.ONNX: "model.onnx",
            ExportFormat.PT: "model.pt",
        }[self]


#: Which ``estimators.Backend`` times each model format (None: not a runnable model).
_LATENCY_BACKEND: dict[ExportFormat, str | None] = {
    ExportFormat.JSON: None,
    ExportFormat.ARCH: None,
    ExportFormat.PY: "torch",
    ExportFormat.TORCHSCRIPT: "torchscript",
    ExportFormat.ONNX: "onnxruntime",
    ExportFormat.PT: "torch",
}

#: What reads each format back during verification.
_CHECKED_WITH: dict[ExportFormat, str] = {
    ExportFormat.JSON: "ArchSpec.from_json",
    ExportFormat.ARCH: "parse_arch",
    ExportFormat.PY: "the standalone source (torch only)",
    ExportFormat.TORCHSCRIPT: "torch.jit.load",
    ExportFormat.ONNX: "onnxruntime (CPU)",
    ExportFormat.PT: "torch.load + build_model",
}


@dataclass(frozen=True)
class ExportResult:
    """What was written and how well the file reproduces the model.

    ``max_abs_diff`` compares the exported file's logits with nasctl's PyTorch model on
    the same seeded batch (None for json/arch, which are checked by parsing back);
    ``max_abs_output`` is the largest reference logit, the scale to read the difference
    against (randomly initialised networks give tiny logits).
    """

    format: ExportFormat
    path: Path
    files: tuple[Path, ...]
    spec: ArchSpec
    input_shape: tuple[int, int, int, int]
    checked_with: str
    max_abs_diff: float | None
    max_abs_output: float | None
    tolerance: float
    #: What the file records for deployment (None: the weights' source recorded none).
    preprocessing: Preprocessing | None = None
    #: False when the weights are random (no checkpoint): not a result to deploy.
    trained: bool = True

    @property
    def latency_backend(self) -> str | None:
        """The ``estimators.Backend`` value that times this format (None: json/arch)."""
        return _LATENCY_BACKEND[self.format]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "path": str(self.path),
            "files": [str(f) for f in self.files],
            "arch": format_arch(self.spec),
            "input_shape": list(self.input_shape),
            "checked_with": self.checked_with,
            "max_abs_diff": self.max_abs_diff,
            "max_abs_output": self.max_abs_output,
            "tolerance": self.tolerance,
            "trained": self.trained,
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
        }


# --- reading weights ------------------------------------------------------------------


def _torch_load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ExportError(f"{what} {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickles of whole modules, truncated files, not torch at all
        raise ExportError(
            f"{what} {str(path)!r} cannot be read as tensors (weights_only): "
            f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
        ) from None


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_checkpoint(
    path: str | Path, spec: ArchSpec | None = None
) -> tuple[dict[str, torch.Tensor], ArchSpec | None]:
    """The state_dict in a ``.pt`` file, and the spec when the file records one.

    Accepted: a bare state_dict (``torch.save(model.state_dict(), f)``); a dict with a
    ``"state_dict"`` key (this module's ``pt`` export) or a ``"model"`` key (nasctl's
    training checkpoints), optionally with a ``"spec"``. Read with ``weights_only=True``:
    pickled modules are refused. With ``spec`` given, a recorded spec must equal it.
    """
    path = Path(path)
    payload = _torch_load(path, "checkpoint")
    recorded: ArchSpec | None = None
    if _is_state_dict(payload):
        state = dict(payload)
    elif isinstance(payload, Mapping) and (
        _is_state_dict(payload.get("state_dict")) or _is_state_dict(payload.get("model"))
    ):
        key = "state_dict" if _is_state_dict(payload.get("state_dict")) else "model"
        state = dict(payload[key])
        raw = payload.get("spec")
        if raw is not None:
            try:
                recorded = (
                    ArchSpec.from_json(raw) if isinstance(raw, str) else ArchSpec.from_dict(raw)
                )
            except SpecError as exc:
                raise ExportError(
                    f"checkpoint {str(path)!r} records an invalid spec: {exc}"
                ) from None
    else:
        raise ExportError(
            f"checkpoint {str(path)!r} must hold a state_dict (str -> tensor), or a dict with "
            "a 'state_dict' or 'model' key holding one"
        )
    if spec is not None and recorded is not None and recorded != spec:
        raise ExportError(
            f"checkpoint {str(path)!r} was saved for a different architecture: "
            f"{format_arch(recorded)} (requested {format_arch(spec)})"
        )
    return state, recorded


def checkpoint_preprocessing(path: str | Path, spec: ArchSpec) -> Preprocessing | None:
    """The preprocessing recorded in a checkpoint for ``spec``: a training checkpoint's
    ``data`` record (mean, std, classes) or a pt export's ``preprocessing``; None when the
    file records none (a bare state_dict)."""
    path = Path(path)
    payload = _torch_load(path, "checkpoint")
    if not isinstance(payload, Mapping):
        return None
    where = f"checkpoint {str(path)!r}"
    try:
        if isinstance(payload.get("preprocessing"), Mapping):
            return Preprocessing.from_dict(payload["preprocessing"], spec, where)
        data = payload.get("data")
        if isinstance(data, Mapping) and {"mean", "std", "classes"} <= set(data):
            return Preprocessing.of(spec, data["mean"], data["std"], data["classes"], where)
    except PreprocessingError as exc:
        raise ExportError(str(exc)) from None
    return None


def read_preprocessing(path: str | Path, fmt: ExportFormat | str) -> Preprocessing | None:
    """What an exported model file records for deployment (resolution, mean, std,
    classes), read the way a deployment would: ONNX Runtime's custom metadata map, the
    TorchScript extra file, the pt payload, the py file's constants. None when the export
    was written without it."""
    fmt = ExportFormat(fmt)
    path = Path(path)
    where = f"{str(path)!r}"
    record: Mapping[str, Any] | None
    if fmt is ExportFormat.ONNX:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        if "mean" not in meta:
            return None
        try:
            return Preprocessing.from_metadata(meta, parse_arch(meta["arch"]), where)
        except (KeyError, SpecError, PreprocessingError) as exc:
            raise ExportError(f"{where}: unreadable preprocessing metadata: {exc}") from None
    if fmt is ExportFormat.TORCHSCRIPT:
        extra = {TORCHSCRIPT_EXTRA: ""}
        with _quiet():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        record = json.loads(extra[TORCHSCRIPT_EXTRA]) if extra[TORCHSCRIPT_EXTRA] else None
        arch = record.get("arch") if record else None
        record = record.get("preprocessing") if record else None
    elif fmt is ExportFormat.PT:
        payload = _torch_load(path, "export")
        record = payload.get("preprocessing") if isinstance(payload, Mapping) else None
        arch = payload.get("arch") if isinstance(payload, Mapping) else None
    elif fmt is ExportFormat.PY:
        namespace = runpy.run_path(str(path))
        if namespace.get("MEAN") is None:
            return None
        record = {
            "resolution": namespace["RESOLUTION"],
            "mean": namespace["MEAN"],
            "std": namespace["STD"],
            "classes": namespace["CLASSES"],
        }
        arch = namespace.get("ARCH")
    else:
        raise ExportError(f"format {fmt.value!r} records no preprocessing (use py, torchscript, "
                          "onnx or pt)")  # fmt: skip
    if record is None:
        return None
    try:
        return Preprocessing.from_dict(record, parse_arch(str(arch)), where)
    except (SpecError, PreprocessingError) as exc:
        raise ExportError(f"{where}: unreadable preprocessing record: {exc}") from None


@dataclass(frozen=True)
class CompareWinner:
    """The candidate to ship from a ``nasctl compare`` folder (see :func:`compare_winner`)."""

    name: str
    trial: int | None
    accuracy: float
    ratio_to_v2: float
    beats: tuple[str, ...]
    spec: ArchSpec
    checkpoint: Path
    table: Path


_WINNER_COLUMNS = ("name", "baseline", "trial", "accuracy", "ratio_to_v2", "dominates", "arch")


def compare_winner(folder: str | Path) -> CompareWinner:
    """The winner of a ``nasctl compare`` run in ``folder`` (``<runs>/<study>/compare``):
    among the retrained search candidates in ``compare.csv`` that beat at least one
    baseline (more accurate, and faster relative to MobileNetV2 in every latency run:
    compare's ``dominates`` column), the most accurate; ties go to the lower x V2. Its
    trained weights are compare's checkpoint ``models/<name>.pt``, whose recorded
    architecture must be the one compare.csv reports. No candidate beating a baseline is
    an ``ExportError``: compare found nothing better to ship."""
    folder = Path(folder)
    table = folder / "compare.csv"
    if not table.is_file():
        raise ExportError(
            f"no compare results at {str(table)!r}: run `nasctl compare` on the study first"
        )
    try:
        with table.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(f"cannot read {str(table)!r}: {exc}") from None
    missing = [c for c in _WINNER_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ExportError(f"{str(table)!r} is not a compare table (no rows, or lacks {missing})")
    try:
        winners = sorted(
            (
                (-float(r["accuracy"]), float(r["ratio_to_v2"]), r)
                for r in rows
                if r["baseline"] == "False" and r["dominates"].strip()
            ),
            key=lambda t: (t[0], t[1]),
        )
    except ValueError as exc:
        raise ExportError(f"{str(table)!r}: unreadable accuracy or ratio_to_v2: {exc}") from None
    if not winners:
        raise ExportError(
            f"no candidate in {str(table)!r} beats a baseline (more accurate and faster in "
            "every latency run): there is no compare winner; export a candidate by hand "
            "with --trial N --checkpoint <compare folder>/models/trial_N.pt"
        )
    neg_accuracy, ratio, row = winners[0]
    try:
        spec = parse_arch(row["arch"])
    except SpecError as exc:
        raise ExportError(f"{str(table)!r}: {row['name']}'s arch does not parse: {exc}") from None
    checkpoint = folder / "models" / f"{row['name']}.pt"
    if not checkpoint.is_file():
        raise ExportError(
            f"compare winner {row['name']}'s trained weights {str(checkpoint)!r} are missing "
            "(rerun `nasctl compare` to retrain it)"
        )
    recorded = read_checkpoint(checkpoint)[1]
    if recorded is not None and recorded != spec:
        raise ExportError(
            f"{str(checkpoint)!r} holds {format_arch(recorded)}, not the {row['name']} that "
            f"{str(table)!r} reports (rerun `nasctl compare`)"
        )
    trial = int(float(row["trial"])) if row["trial"].strip() else None
    beats = tuple(b.strip() for b in row["dominates"].split(","))
    return CompareWinner(row["name"], trial, -neg_accuracy, ratio, beats, spec, checkpoint, table)


def random_weights(spec: ArchSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Untrained weights whose logits are about 1, for exporting an architecture with no
    checkpoint. A training init's activations vanish through a deep network (logits
    ~1e-10, against which a 1e-4 check proves nothing); here convolutions and linear layers
    are variance-preserving, BatchNorm statistics come from one random batch (variances
    floored: a channel dead on the whole batch would amplify rounding 300x), and the
    classifier is scaled to logits of about 1."""
    model = build_model(spec, seed)
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", generator=gen)
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch sets the statistics
    x = torch.randn(16, 3, spec.resolution, spec.resolution, generator=gen)
    with torch.no_grad():
        model.train()(x)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.running_var is not None:
                m.running_var.clamp_(min=0.1)
        scale = 1.0 / float(model.eval()(x).abs().max())
        classifier = cast(nn.Linear, model.head.classifier)
        classifier.weight.mul_(scale)
        classifier.bias.mul_(scale)
    return model.state_dict()


def _model(spec: ArchSpec, state_dict: Mapping[str, torch.Tensor] | None, seed: int) -> MobileNet:
    model = build_model(spec, seed)
    if state_dict is None:
        model.load_state_dict(random_weights(spec, seed))
    else:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            missing = sorted(set(model.state_dict()) - set(state_dict))
            unexpected = sorted(set(state_dict) - set(model.state_dict()))
            detail = (
                f"missing {missing[:3]}, unexpected {unexpected[:3]}"
                if missing or unexpected
                else str(exc).splitlines()[-1].strip()
            )
            raise ExportError(f"state_dict does not fit the architecture: {detail}") from None
    return model.eval()


def check_weights(spec: ArchSpec, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a checkpoint whose weights do not fit ``spec`` before anything is written,
    with a message that names the file."""
    try:
        _model(spec, state, 0)
    except ExportError as exc:
        raise ExportError(f"checkpoint {str(path)!r}: {exc}") from None


def load_pt(path: str | Path) -> tuple[ArchSpec, MobileNet]:
    """Read a ``pt`` export back: the spec and the model with its weights (eval mode)."""
    path = Path(path)
    payload = _torch_load(path, "export")
    if not isinstance(payload, Mapping) or payload.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{str(path)!r} is not a nasctl pt export ({EXPORT_FORMAT})")
    spec = ArchSpec.from_dict(payload["spec"])
    return spec, _model(spec, payload["state_dict"], seed=0)


# --- running an exported file -------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.jit and the TorchScript-based ONNX exporter warn that they are deprecated;
    they are still what torch 2.x ships for these formats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def load_exported(
    path: str | Path, fmt: ExportFormat | str, optimized: bool = True, threads: int | None = None
) -> Callable[[torch.Tensor], Any]:
    """A callable running the exported file on a batch (logits as a tensor or array).

    The verification runs exactly this, with ``optimized=False``: TorchScript's profiling
    executor re-optimises a graph over its first calls (seconds on a small CPU), which a
    single call does not need. The latency protocol should time it with the default.
    ``threads`` sets ONNX Runtime's intra-op threads (torch formats follow the caller's
    ``torch.set_num_threads``); None leaves the runtime's default.
    """
    fmt = ExportFormat(fmt)
    path = Path(path)
    if fmt is ExportFormat.ONNX:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.numpy()})[0]
    if fmt is ExportFormat.TORCHSCRIPT:
        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu")
        return _no_grad(module, optimized)
    if fmt is ExportFormat.PY:
        namespace = runpy.run_path(str(path))
        return _no_grad(namespace["load_model"](), optimized)
    if fmt is ExportFormat.PT:
        return _no_grad(load_pt(path)[1], optimized)
    raise ExportError(
        f"format {fmt.value!r} is not a runnable model (use py, torchscript, onnx or pt)"
    )


def exported_latency(
    result: ExportResult, threads: int = 1, config: LatencyConfig | None = None
) -> LatencyResult:
    """Time the exported file itself with the latency protocol (batch 1): ONNX Runtime
    for onnx, the frozen/traced TorchScript module for torchscript, the standalone or
    loaded module for py and pt (as shipped, so BatchNorm is not folded there).

    ``config`` overrides the protocol (its backend is set to the file's runtime)."""
    backend = result.latency_backend
    if backend is None:
        raise ExportError(f"format {result.format.value!r} is not a runnable model to time")
    config = replace(config or LatencyConfig(), backend=Backend(backend), threads=threads)
    call = load_exported(result.path, result.format, optimized=True, threads=threads)
    shape = (1, *result.input_shape[1:])
    target = Target(result.path.name, None, shape, call=call)
    return measure(target, config)


def _no_grad(
    module: Callable[[torch.Tensor], Any], optimized: bool
) -> Callable[[torch.Tensor], Any]:
    def run(x: torch.Tensor) -> Any:
        with torch.inference_mode(), torch.jit.optimized_execution(optimized):
            return module(x)

    return run


# --- export ---------------------------------------------------------------------------------


def export_path(out: str | Path, fmt: ExportFormat) -> Path:
    """The file ``export_model`` writes for ``out`` (creating nothing): ``out`` itself, or
    ``fmt.default_name`` in it when it is a directory or has no suffix."""
    path = Path(out)
    if path.is_dir() or not path.suffix:
        path = path / fmt.default_name
    if fmt is ExportFormat.PY and path.suffix != ".py":
        raise ExportError(
            "out must end with .py for format py (the weights go to <name>_weights.pt), "
            f"got {str(path)!r}"
        )
    return path


def _out_path(out: str | Path, fmt: ExportFormat) -> Path:
    path = export_path(out, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create directory {str(path.parent)!r}: {exc.strerror}") from None
    return path


def py_weights_path(path: str | Path) -> Path:
    """Where a py export keeps its weights: ``<name>_weights.pt`` beside ``<name>.py``
    (``<name>.pt`` is where a pt export of the same name goes)."""
    path = Path(path)
    return path.with_name(f"{path.stem}_weights.pt")


def check_options(opset: int, tolerance: float, batch: int = 2) -> None:
    """Refuse an opset, tolerance or batch export_model would refuse (before any work)."""
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < MIN_OPSET:
        raise ExportError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    if not isinstance(tolerance, int | float) or not 0 < tolerance < 1:
        raise ExportError(f"tolerance must be a number in (0, 1), got {tolerance!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ExportError(f"batch must be a positive integer, got {batch!r}")


def export_model(
    spec: ArchSpec,
    out: str | Path,
    fmt: ExportFormat | str,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    opset: int = MIN_OPSET,
    freeze: bool = False,
    tolerance: float = 1e-4,
    batch: int = 2,
    preprocessing: Preprocessing | None = None,
) -> ExportResult:
    """Write ``spec`` (with ``state_dict``, else :func:`random_weights` from ``seed``) as ``fmt``
    to ``out``, then verify it. ``out`` is a directory (created when missing) to hold
    ``fmt.default_name`` when it is one already or has no suffix; otherwise the file.

    The verification batch (``batch`` images, ``seed``) is larger than 1 so that the ONNX
    model's dynamic batch axis is exercised too. ``freeze`` inlines the TorchScript
    weights and folds BatchNorm: faster, but no longer bit-identical to eager PyTorch.
    The tolerance is absolute for logits up to 1 and scales with the largest logit above
    that: float32 reassociation (ONNX Runtime's kernels, folded BN) moves logits by about
    1e-6 of their scale, so a frozen model with logits near 20 differs by about 1e-4.
    ``preprocessing`` (see :func:`checkpoint_preprocessing`) is written into model formats
    for deployment; every model format also records the arch and whether it is trained.
    """
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        allowed = ", ".join(f.value for f in ExportFormat)
        raise ExportError(f"format must be one of {allowed}, got {fmt!r}") from None
    check_options(opset, tolerance, batch)
    if preprocessing is not None and (
        preprocessing.resolution != spec.resolution
        or len(preprocessing.classes) != spec.num_classes
    ):
        raise ExportError(
            f"preprocessing is for {preprocessing.resolution} px and "
            f"{len(preprocessing.classes)} classes, the architecture for {spec.resolution} px "
            f"and {spec.num_classes} classes"
        )
    path = _out_path(out, fmt)
    shape = (batch, 3, spec.resolution, spec.resolution)
    files: tuple[Path, ...] = (path,)

    def result(diff: float | None = None, scale: float | None = None) -> ExportResult:
        return ExportResult(
            fmt,
            path,
            files,
            spec,
            shape,
            _CHECKED_WITH[fmt],
            diff,
            scale,
            tolerance,
            preprocessing,
            state_dict is not None,
        )

    try:
        if fmt is ExportFormat.JSON:
            path.write_text(spec.to_json() + "\n", encoding="utf-8")
            if ArchSpec.from_json(path.read_text(encoding="utf-8")) != spec:
                raise ExportError(f"{str(path)!r} does not parse back to the same spec")
            return result()
        if fmt is ExportFormat.ARCH:
            path.write_text(format_arch(spec) + "\n", encoding="utf-8")
            if parse_arch(path.read_text(encoding="utf-8").strip()) != spec:
                raise ExportError(f"{str(path)!r} does not parse back to the same spec")
            return result()

        model = _model(spec, state_dict, seed)
        weights_note = "trained" if state_dict is not None else f"random (untrained, seed {seed})"
        record = {
            "arch": format_arch(spec),
            "weights": weights_note,
            "preprocessing": preprocessing.to_dict() if preprocessing else None,
        }
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            expected = model(x)
        if fmt is ExportFormat.PT:
            torch.save(
                {
                    "format": EXPORT_FORMAT,
                    "spec": spec.to_dict(),
                    "arch": format_arch(spec),
                    "state_dict": model.state_dict(),
                    "weights": weights_note,
                    "preprocessing": record["preprocessing"],
                },
                path,
            )
        elif fmt is ExportFormat.PY:
            weights = py_weights_path(path)  # not <name>.pt: a pt export's name
            path.write_text(
                standalone_source(spec, preprocessing=preprocessing, weights=weights_note),
                encoding="utf-8",
            )
            torch.save(model.state_dict(), weights)
            files = (path, weights)
        elif fmt is ExportFormat.TORCHSCRIPT:
            _write_torchscript(model, x, path, freeze, {TORCHSCRIPT_EXTRA: json.dumps(record)})
        else:
            metadata = {"arch": format_arch(spec), "weights": weights_note}
            _write_onnx(model, x, path, opset, metadata | _onnx_metadata(preprocessing))
    except OSError as exc:
        raise ExportError(f"cannot write {str(path)!r}: {exc.strerror}") from None

    try:
        got = load_exported(path, fmt, optimized=False)(x)
    except ExportError:
        raise
    except Exception as exc:  # the file was written but does not run: say so in one line
        raise ExportError(
            f"{str(path)!r} ({fmt.value}) was written but fails to run: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    got_t = torch.as_tensor(np.asarray(got)) if not isinstance(got, torch.Tensor) else got
    if got_t.shape != expected.shape:
        raise ExportError(
            f"{str(path)!r} ({fmt.value}) returns shape {tuple(got_t.shape)}, "
            f"expected {tuple(expected.shape)}"
        )
    diff = float((got_t.float() - expected).abs().max())
    scale = float(expected.abs().max())
    allowed = tolerance * max(1.0, scale)
    if not diff <= allowed:  # also catches NaN
        raise ExportError(
            f"{str(path)!r} ({fmt.value}) differs from the PyTorch model by {diff:.3g} "
            f"(max abs; allowed {allowed:.3g}: tolerance {tolerance:g} x the largest logit "
            f"{scale:.3g}, at least 1)"
        )
    return result(diff, scale)


def _onnx_metadata(preprocessing: Preprocessing | None) -> dict[str, str]:
    return preprocessing.to_metadata() if preprocessing is not None else {}


def _write_torchscript(
    model: nn.Module, x: torch.Tensor, path: Path, freeze: bool, extra: dict[str, str]
) -> None:
    """Trace (the network has no data-dependent control flow; the residual choice is a
    Python bool fixed at build time), optionally freeze (inlines weights, folds BN)."""
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model, (x,), check_trace=False)
            if freeze:
                traced = torch.jit.freeze(traced.eval())
            traced.save(str(path), _extra_files=extra)
    except RuntimeError as exc:
        raise ExportError(f"cannot trace the model to TorchScript: {exc}") from None


def _write_onnx(
    model: nn.Module, x: torch.Tensor, path: Path, opset: int, metadata: dict[str, str]
) -> None:
    """Export, then add ``metadata`` as the model's ``metadata_props`` (ONNX Runtime's
    ``get_modelmeta().custom_metadata_map``)."""
    import onnx

    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, metadata)
        onnx.save(proto, str(path))
        onnx.checker.check_model(str(path))
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
        raise ExportError(f"cannot export to ONNX opset {opset}: {exc}") from None
