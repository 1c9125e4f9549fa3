"""Write one architecture (and its weights) in a form to ship, then prove the file works.

Formats: ``json`` (the spec), ``arch`` (the one-line string), ``py`` (standalone torch
source + a state_dict ``.pt`` next to it), ``torchscript`` (traced, optionally frozen),
``onnx`` (opset >= 17), ``pt`` (state_dict + spec) and ``timm`` (a folder: timm block
strings, weights under timm's names and a loader; ``_timm``). Every format is read back
after writing: the text forms must parse to the same spec, the model forms must give the
same logits as nasctl's PyTorch model on one seeded random batch, within ``tolerance`` (max
absolute difference, 1e-4 by default, times the largest logit where that is above 1). A
mismatch is an ``ExportError``, not a warning. ``timm`` is read back by timm where it is
installed (it is no dependency), else its weights' names and shapes are checked against
what its block strings imply.

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

This module writes and verifies; the formats and the result record are in
``_export_format``, reading weights in ``_checkpoint``, reading an exported file back in
``_exported``, the compare winner in ``_winner``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from results._checkpoint import _model
from results._codegen import standalone_source
from results._export_format import (
    _CHECKED_WITH,
    EXPORT_FORMAT,
    MIN_OPSET,
    TORCHSCRIPT_EXTRA,
    ExportError,
    ExportFormat,
    ExportResult,
)
from results._exported import _quiet, load_exported
from results._preprocessing import Preprocessing
from results._timm import timm_logits, write_timm
from search_space import ArchSpec, format_arch, parse_arch

__all__ = ["check_options", "export_model", "export_path", "py_weights_path"]


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
    if fmt is ExportFormat.TIMM and path.name != fmt.default_name:
        raise ExportError(
            "out must be a folder for format timm (it holds timm_arch.json, "
            f"timm_weights.pt and load_timm.py), got {str(out)!r}"
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
        formats = ", ".join(f.value for f in ExportFormat)
        raise ExportError(f"format must be one of {formats}, got {fmt!r}") from None
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
        if fmt is ExportFormat.TIMM:
            files = write_timm(spec, model.state_dict(), path.parent, record)
        elif fmt is ExportFormat.PT:
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
        if fmt is ExportFormat.TIMM:
            got = timm_logits(path.parent, x)
            if got is None:  # timm is not a dependency: names and shapes were checked
                return dataclasses.replace(
                    result(),
                    checked_with="names and shapes vs the block strings (timm not installed)",
                )
        else:
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
