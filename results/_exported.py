"""Reading an exported file back: running it (the callable verification and latency
use), timing it, and reading the deployment record it carries."""

from __future__ import annotations

import contextlib
import json
import runpy
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from estimators import Backend, LatencyConfig, LatencyResult, Target, measure
from results._checkpoint import _model, _torch_load
from results._export_format import (
    EXPORT_FORMAT,
    TORCHSCRIPT_EXTRA,
    ExportError,
    ExportFormat,
    ExportResult,
)
from results._preprocessing import Preprocessing, PreprocessingError
from search_space import ArchSpec, MobileNet, SpecError, parse_arch

__all__ = ["exported_latency", "load_exported", "load_pt", "read_preprocessing"]


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


def load_pt(path: str | Path) -> tuple[ArchSpec, MobileNet]:
    """Read a ``pt`` export back: the spec and the model with its weights (eval mode)."""
    path = Path(path)
    payload = _torch_load(path, "export")
    if not isinstance(payload, Mapping) or payload.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{str(path)!r} is not a nasctl pt export ({EXPORT_FORMAT})")
    spec = ArchSpec.from_dict(payload["spec"])
    return spec, _model(spec, payload["state_dict"], seed=0)


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
