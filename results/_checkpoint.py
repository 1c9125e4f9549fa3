"""Reading weights to export: checkpoints, the preprocessing they record, untrained
weights for an architecture with no checkpoint, and the model the weights load into."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from results._export_format import ExportError
from results._preprocessing import Preprocessing, PreprocessingError
from search_space import ArchSpec, MobileNet, SpecError, build_model, format_arch

__all__ = [
    "check_weights",
    "checkpoint_preprocessing",
    "random_weights",
    "read_checkpoint",
    "state_dict_mismatch",
]


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
            detail = state_dict_mismatch(model, state_dict, exc)
            raise ExportError(f"state_dict does not fit the architecture: {detail}") from None
    return model.eval()


def state_dict_mismatch(
    model: nn.Module, state: Mapping[str, torch.Tensor], exc: RuntimeError
) -> str:
    """Why ``state`` does not load into ``model`` (``exc``: what ``load_state_dict``
    raised), in one line: the first missing and unexpected keys, else the last line of
    torch's message (a shape that differs)."""
    missing = sorted(set(model.state_dict()) - set(state))
    unexpected = sorted(set(state) - set(model.state_dict()))
    return (
        f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        if missing or unexpected
        else str(exc).strip().splitlines()[-1].strip()
    )


def check_weights(spec: ArchSpec, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a checkpoint whose weights do not fit ``spec`` before anything is written,
    with a message that names the file."""
    try:
        _model(spec, state, 0)
    except ExportError as exc:
        raise ExportError(f"checkpoint {str(path)!r}: {exc}") from None
