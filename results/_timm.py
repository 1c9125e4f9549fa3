"""The timm bridge: a spec as timm's block strings, its weights under timm's names.

timm's EfficientNet builder (``timm/models/_efficientnet_builder.py``) decodes stages of
block strings such as ``ir_r1_k3_s2_e4_c24_se0.25_nre``. nasctl's blocks map onto three of
its block types and its two MobileNet-family classes:

* inverted residual with an expand conv -> ``ir`` (timm's ``InvertedResidual``);
* inverted residual without one (expansion 1) -> ``ds`` (``DepthwiseSeparableConv``: no
  activation after the projection, a residual when stride 1 and in == out, like nasctl);
* depthwise-separable (V1) block -> ``dsa`` (the same with an activation after the
  pointwise conv and no residual);
* the head's 1x1 conv + BN + act before pooling -> a final ``cn`` stage (``ConvBnAct``).

A head with a hidden layer after pooling (MobileNetV3's "NBN" conv) is timm's
``MobileNetV3`` class (its ``conv_head`` with bias, then ``act_layer``); a head without one
is timm's ``EfficientNet`` class with ``num_features=0`` (pool -> classifier), which is
how V1 and V2 are written. Squeeze-and-excitation uses timm's ``SqueezeExcite`` with a
ReLU and a hard-sigmoid gate, its width rounded by ``round`` so any nasctl width is exact;
``round_chs_fn=int`` keeps every output width as written.

What timm cannot express is refused with the field named: a stem that is not stride 2
(both classes) or not 3x3 (``MobileNetV3``), a head conv without BatchNorm, a hidden
activation other than the stem's (timm uses one ``act_layer`` for both), an expanded
width timm's ``make_divisible(in * e)`` cannot produce, and (``MobileNetV3``) a total
stride above its fixed output stride of 32.
"""

from __future__ import annotations

import json
import re
import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from results._export_format import ExportError
from search_space import ArchSpec, format_arch, make_divisible
from search_space._spec import Activation, BlockKind, BlockSpec

__all__ = [
    "TIMM_ARCH_NAME",
    "TIMM_LOADER_NAME",
    "TIMM_WEIGHTS_NAME",
    "arch_def_shapes",
    "timm_arch",
    "timm_key_map",
    "timm_logits",
    "timm_state_dict",
    "write_timm",
]

TIMM_ARCH_NAME = "timm_arch.json"
TIMM_WEIGHTS_NAME = "timm_weights.pt"
TIMM_LOADER_NAME = "load_timm.py"
TIMM_ARCH_FORMAT = "nasctl-timm/1"

#: The activation token of timm's block strings (``_decode_block_str``'s ``n`` option).
_BLOCK_ACT = {
    Activation.RELU: "re",
    Activation.RELU6: "r6",
    Activation.HSWISH: "hs",
    Activation.SWISH: "sw",
}
#: The model-level ``act_layer`` name that ``timm.layers.get_act_layer`` resolves.
_MODEL_ACT = {
    Activation.RELU: "relu",
    Activation.RELU6: "relu6",
    Activation.HSWISH: "hard_swish",
    Activation.SWISH: "swish",
}
#: timm's MobileNetV3 builds its blocks with a fixed output stride.
_V3_OUTPUT_STRIDE = 32


def _refuse(what: str) -> ExportError:
    return ExportError(f"timm cannot express this spec: {what}")


def _ratio(value: float) -> str:
    """A float as the block string holds it: the shortest text that reads back equal."""
    return repr(float(value))


def _block_string(i: int, block: BlockSpec, se_from_exp: bool) -> str:
    act = _BLOCK_ACT[block.act]
    head = f"r1_k{block.kernel}_s{block.stride}"
    se = ""
    if block.kind is BlockKind.DEPTHWISE_SEPARABLE:
        kind = "dsa"
    elif block.has_expand_conv:
        kind = "ir"
        e = block.mid_channels / block.in_channels
        if make_divisible(block.in_channels * float(_ratio(e))) != block.mid_channels:
            raise _refuse(
                f"blocks[{i}].mid_channels {block.mid_channels} is not what timm's "
                f"make_divisible({block.in_channels} x e) gives for any e (a multiple of 8)"
            )
        head += f"_e{_ratio(e)}"
    else:
        kind = "ds"
    if block.has_se:
        # timm's builder divides the ratio by the expansion unless se_from_exp; either way
        # SqueezeExcite(mid, rd_ratio) rounds mid * rd_ratio to the squeeze width.
        expansion = float(_ratio(block.expansion)) if kind == "ir" else 1.0
        r = block.se_channels / (block.mid_channels if se_from_exp else block.in_channels)
        rd_ratio = float(_ratio(r)) if se_from_exp else float(_ratio(r)) / expansion
        if round(block.mid_channels * rd_ratio) != block.se_channels:
            raise _refuse(f"blocks[{i}].se_channels {block.se_channels} has no exact ratio")
        se = f"_se{_ratio(r)}"
    return f"{kind}_{head}_c{block.out_channels}{se}_n{act}"


def timm_arch(spec: ArchSpec) -> dict[str, Any]:
    """The timm model class, ``arch_def`` (stages of block strings) and its JSON-able
    constructor arguments; raises ``ExportError`` naming what timm cannot express."""
    head = spec.head
    v3 = head.hidden_features > 0
    model_class = "MobileNetV3" if v3 else "EfficientNet"
    if spec.stem.stride != 2:
        raise _refuse(f"stem.stride is {spec.stem.stride}; timm's stems are stride 2")
    if v3 and spec.stem.kernel != 3:
        raise _refuse(
            f"stem.kernel is {spec.stem.kernel}; timm's MobileNetV3 (a head with a hidden "
            "layer) has a 3x3 stem"
        )
    if head.conv_channels and not head.conv_bn:
        raise _refuse("head.conv_bn is false; timm's ConvBnAct head conv has BatchNorm")
    if v3 and head.hidden_act != spec.stem.act:
        raise _refuse(
            f"head.hidden_act is {head.hidden_act.value} and stem.act "
            f"{spec.stem.act.value}; timm's MobileNetV3 uses one act_layer for both"
        )
    if v3 and spec.total_stride > _V3_OUTPUT_STRIDE:
        raise _refuse(
            f"the total stride is {spec.total_stride}; timm's MobileNetV3 dilates past "
            f"{_V3_OUTPUT_STRIDE}"
        )
    stages: list[list[str]] = []
    for i, block in enumerate(spec.blocks):
        text = _block_string(i, block, se_from_exp=v3)
        # The builder lets only a stage's first block have stride 2.
        if not stages or block.stride == 2:
            stages.append([])
        stages[-1].append(text)
    if head.conv_channels:
        stages.append([f"cn_r1_k1_s1_c{head.conv_channels}_n{_BLOCK_ACT[head.conv_act]}"])
    kwargs: dict[str, Any] = {
        "num_classes": spec.num_classes,
        "stem_size": spec.stem.out_channels,
        "fix_stem": True,
        "act_layer": _MODEL_ACT[spec.stem.act],
        "drop_rate": head.dropout,
    }
    if v3:
        kwargs |= {"num_features": head.hidden_features, "head_bias": True, "se_from_exp": True}
    else:
        kwargs |= {"num_features": 0, "stem_kernel_size": spec.stem.kernel}
        if spec.total_stride > _V3_OUTPUT_STRIDE:
            kwargs["output_stride"] = spec.total_stride
    return {
        "format": TIMM_ARCH_FORMAT,
        "nasctl_arch": format_arch(spec),
        "model_class": model_class,
        "arch_def": stages,
        "kwargs": kwargs,
        "input_size": [3, spec.resolution, spec.resolution],
    }


#: nasctl submodule -> timm submodule inside one block, by timm block type.
_BLOCK_KEYS = {
    "ir": {
        "conv_pw.conv": "conv_pw",
        "conv_pw.bn": "bn1",
        "conv_dw.conv": "conv_dw",
        "conv_dw.bn": "bn2",
        "conv_pwl.conv": "conv_pwl",
        "conv_pwl.bn": "bn3",
    },
    "ds": {
        "conv_dw.conv": "conv_dw",
        "conv_dw.bn": "bn1",
        "conv_pwl.conv": "conv_pw",
        "conv_pwl.bn": "bn2",
    },
    "dsa": {
        "conv_dw.conv": "conv_dw",
        "conv_dw.bn": "bn1",
        "conv_pw.conv": "conv_pw",
        "conv_pw.bn": "bn2",
    },
}
_SE_KEYS = {"se.fc1": "se.conv_reduce", "se.fc2": "se.conv_expand"}


def timm_key_map(spec: ArchSpec, keys: list[str]) -> dict[str, str]:
    """Every nasctl state_dict key in ``keys`` -> its timm key (``ExportError`` if one has
    no place: the mapping must cover the whole model)."""
    arch = timm_arch(spec)
    prefixes = {"stem.conv": "conv_stem", "stem.bn": "bn1", "head.classifier": "classifier"}
    if spec.head.hidden_features:
        prefixes["head.hidden"] = "conv_head"
    where = [(s, j) for s, stage in enumerate(arch["arch_def"]) for j in range(len(stage))]
    for i in range(len(spec.blocks)):
        s, j = where[i]
        kind = arch["arch_def"][s][j].split("_", 1)[0]
        for ours, theirs in (_BLOCK_KEYS[kind] | _SE_KEYS).items():
            prefixes[f"blocks.{i}.{ours}"] = f"blocks.{s}.{j}.{theirs}"
    if spec.head.conv_channels:
        last = len(arch["arch_def"]) - 1
        prefixes["head.conv.conv"] = f"blocks.{last}.0.conv"
        prefixes["head.conv.bn"] = f"blocks.{last}.0.bn1"
    mapping = {}
    for key in keys:
        prefix, _, leaf = key.rpartition(".")
        if prefix not in prefixes:
            raise ExportError(f"the nasctl weight {key!r} has no place in timm's model")
        mapping[key] = f"{prefixes[prefix]}.{leaf}"
    if len(set(mapping.values())) != len(mapping):
        raise ExportError("two nasctl weights map to one timm weight")
    return mapping


def timm_state_dict(
    spec: ArchSpec, state_dict: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``state_dict`` under timm's names; the hidden linear becomes a 1x1 conv weight."""
    mapping = timm_key_map(spec, list(state_dict))
    out = {}
    for key, value in state_dict.items():
        if key == "head.hidden.weight":
            value = value.reshape(*value.shape, 1, 1)
        out[mapping[key]] = value.detach().clone()
    return out


_NUM = re.compile(r"([a-z]+)(\d.*)")


def _options(block: str) -> tuple[str, dict[str, str]]:
    kind, *ops = block.split("_")
    options = {}
    for op in ops:
        if op.startswith("n") or op in ("noskip", "skip"):
            continue
        match = _NUM.fullmatch(op)
        if match is None:
            raise ExportError(f"block string {block!r} has an unreadable option {op!r}")
        options[match[1]] = match[2]
    return kind, options


def _conv_bn(name: str, bn: str, cin: int, cout: int, k: int, groups: int = 1) -> dict:
    return {
        f"{name}.weight": (cout, cin // groups, k, k),
        f"{bn}.weight": (cout,),
        f"{bn}.bias": (cout,),
        f"{bn}.running_mean": (cout,),
        f"{bn}.running_var": (cout,),
        f"{bn}.num_batches_tracked": (),
    }


def arch_def_shapes(arch: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes that timm builds from ``arch`` (a :func:`timm_arch` record),
    read from the block strings alone by timm's rules (``make_divisible(in * e)`` expanded
    widths, ``round(ratio x width)`` squeeze widths). What the structural check compares
    the renamed weights with where timm itself is not installed."""
    kwargs = arch["kwargs"]
    se_from_exp = arch["model_class"] == "MobileNetV3"
    c = int(kwargs["stem_size"])
    k = int(kwargs.get("stem_kernel_size", 3))
    shapes = _conv_bn("conv_stem", "bn1", 3, c, k)
    for s, stage in enumerate(arch["arch_def"]):
        for j, text in enumerate(stage):
            kind, o = _options(text)
            p = f"blocks.{s}.{j}"
            out = int(o["c"])
            if kind == "cn":
                shapes |= _conv_bn(f"{p}.conv", f"{p}.bn1", c, out, int(o["k"]))
                c = out
                continue
            dw = int(o["k"])
            if kind == "ir":
                e = float(o["e"])
                mid = make_divisible(c * e)
                shapes |= _conv_bn(f"{p}.conv_pw", f"{p}.bn1", c, mid, 1)
                shapes |= _conv_bn(f"{p}.conv_dw", f"{p}.bn2", mid, mid, dw, mid)
                shapes |= _conv_bn(f"{p}.conv_pwl", f"{p}.bn3", mid, out, 1)
            else:
                e, mid = 1.0, c
                shapes |= _conv_bn(f"{p}.conv_dw", f"{p}.bn1", c, c, dw, c)
                shapes |= _conv_bn(f"{p}.conv_pw", f"{p}.bn2", c, out, 1)
            if "se" in o:
                ratio = float(o["se"]) if se_from_exp else float(o["se"]) / e
                rd = round(mid * ratio)
                shapes[f"{p}.se.conv_reduce.weight"] = (rd, mid, 1, 1)
                shapes[f"{p}.se.conv_reduce.bias"] = (rd,)
                shapes[f"{p}.se.conv_expand.weight"] = (mid, rd, 1, 1)
                shapes[f"{p}.se.conv_expand.bias"] = (mid,)
            c = out
    hidden = int(kwargs["num_features"])
    if hidden:
        shapes["conv_head.weight"] = (hidden, c, 1, 1)
        shapes["conv_head.bias"] = (hidden,)
        c = hidden
    shapes["classifier.weight"] = (int(kwargs["num_classes"]), c)
    shapes["classifier.bias"] = (int(kwargs["num_classes"]),)
    return shapes


#: The loader written beside the export: timm and torch only (it names the two files
#: ``TIMM_ARCH_NAME`` and ``TIMM_WEIGHTS_NAME``; a test checks they agree).
LOADER_SOURCE = '''"""Build the exported network with timm and load its weights.

    python load_timm.py          # builds it and prints the logits' shape

Needs torch and timm. Written by `nasctl export -f timm`; timm_arch.json holds the block
strings (timm's arch_def) and the constructor arguments, timm_weights.pt the state_dict
under timm's names.
"""

import json
from functools import partial
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def build(arch_path=HERE / "timm_arch.json", weights_path=HERE / "timm_weights.pt"):
    from timm.layers import get_act_layer
    from timm.models import efficientnet, mobilenetv3
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import decode_arch_def

    arch = json.loads(Path(arch_path).read_text(encoding="utf-8"))
    kwargs = dict(arch["kwargs"])
    kwargs["act_layer"] = get_act_layer(kwargs["act_layer"])
    # nasctl's squeeze-and-excitation: ReLU, hard-sigmoid gate, width round(ratio x mid).
    kwargs["se_layer"] = partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU)
    kwargs["round_chs_fn"] = int  # every width in the block strings is final
    cls = {"MobileNetV3": mobilenetv3.MobileNetV3, "EfficientNet": efficientnet.EfficientNet}
    model = cls[arch["model_class"]](block_args=decode_arch_def(arch["arch_def"]), **kwargs)
    if weights_path is not None:
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model.eval()


if __name__ == "__main__":
    model = build()
    size = json.loads((HERE / "timm_arch.json").read_text(encoding="utf-8"))["input_size"]
    with torch.inference_mode():
        print(model(torch.randn(1, *size)).shape)
'''


def write_timm(
    spec: ArchSpec,
    state_dict: Mapping[str, torch.Tensor],
    folder: Path,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path, Path]:
    """Write ``timm_arch.json`` (with ``extra`` records), ``timm_weights.pt`` and
    ``load_timm.py`` into ``folder``; then check the weights' names and shapes against
    what the block strings imply."""
    arch = timm_arch(spec) | dict(extra or {})
    weights = timm_state_dict(spec, state_dict)
    implied = arch_def_shapes(arch)
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != implied:
        wrong = sorted(set(got) ^ set(implied)) or sorted(k for k in got if got[k] != implied[k])
        raise ExportError(f"the timm weights do not match the block strings at {wrong[0]!r}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / TIMM_ARCH_NAME, folder / TIMM_WEIGHTS_NAME, folder / TIMM_LOADER_NAME)
    paths[0].write_text(json.dumps(arch, indent=2) + "\n", encoding="utf-8")
    torch.save(weights, paths[1])
    paths[2].write_text(LOADER_SOURCE, encoding="utf-8")
    return paths


def timm_logits(folder: Path, x: torch.Tensor) -> torch.Tensor | None:
    """The logits of the export in ``folder`` built by its own ``load_timm.py`` (so by
    timm's classes and block decoder) on ``x``; None where timm cannot be imported."""
    try:
        import timm  # noqa: F401
    except ImportError:  # timm, or the torchvision it imports, is not installed
        return None
    loader = runpy.run_path(str(folder / TIMM_LOADER_NAME))
    model = loader["build"](folder / TIMM_ARCH_NAME, folder / TIMM_WEIGHTS_NAME)
    with torch.inference_mode():
        out: torch.Tensor = model(x)
    return out
