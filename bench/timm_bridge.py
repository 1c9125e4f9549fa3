"""The timm bridge, checked with timm itself: params and logits of nasctl vs timm.

For the four baselines, ``--n`` random architectures of the default space (seeds from
0), ``--n-other`` of each other built-in space and three hand-written edge cases: writes
``nasctl export -f timm``'s three files, builds the model with the written
``load_timm.py`` (timm's own classes and block decoder), and compares parameter counts
and logits (eval mode; the export's random weights with every bias and BatchNorm affine
randomised too, so that every weight matters, and the classifier rescaled to logits of
about 1; one seeded batch of 2 at the spec's resolution). A spec timm cannot express
is recorded with the refusal.

Needs timm (and the torchvision it imports) beside nasctl; it is not a project
dependency, so this runs in a separate environment:

    PYTHONPATH=. python bench/timm_bridge.py

Writes bench/results/timm_bridge.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import runpy
import tempfile
from pathlib import Path

import torch

from results import ExportError, export_model, random_weights
from search_space import (
    baseline_names,
    build_model,
    format_arch,
    get_baseline,
    load_space,
    parse_arch,
)

RESULTS = Path(__file__).parent / "results"

#: Every block type the bridge writes, SE in each, four activations, a 5x5 stem and a
#: total stride of 64 (EfficientNet's output_stride); a hidden head with other acts; a head
#: with no conv (tests/results/test_timm.py checks the same ones without timm).
EDGE_ARCHS = {
    "all block kinds": "r64_n7,stem_k5_s2_c24_sw,ds_k3_s1_c24_sc6_r6,ds_k3_s2_c32_sc5_re,"
    "ir_k5_s1_c32_sc8_hs,ir_k3_s2_m72_c40_sc18_sw,ir_k7_s2_m120_c40_re,"
    "ir_k3_s2_e3_c48_se0.25_hs,ir_k3_s2_e2_c56_r6,head_c96_sw_d0.1",
    "hidden head": "r32_n5,stem_k3_s2_c16_r6,ds_k3_s1_c16_sc4_re,ir_k3_s2_m40_c24_sc10_sw,"
    "ir_k3_s1_e4_c24_hs,head_c64_hs_h80_r6_d0",
    "no head conv": "r32_n3,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,head_h32_re_d0",
}


def weights(spec, seed: int) -> dict[str, torch.Tensor]:
    """The export's random weights (logits about 1) with every bias and BatchNorm affine
    made random too: a zero bias or unit BN scale mapped to the wrong place would go
    unseen."""
    state = random_weights(spec, seed)
    gen = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.endswith(".bias") or (key.endswith(".weight") and value.dim() == 1):
            scale = torch.rand(value.shape, generator=gen) + 0.5
            state[key] = value * scale + 0.05 * torch.randn(value.shape, generator=gen)
    return state


def check(name: str, spec, seed: int) -> dict:
    row: dict = {"name": name, "arch": format_arch(spec)}
    model = build_model(spec, seed=seed).eval()
    model.load_state_dict(weights(spec, seed))
    x = torch.randn(
        2, 3, spec.resolution, spec.resolution, generator=torch.Generator().manual_seed(seed)
    )
    with torch.inference_mode():  # logits of about 1 again, the scale 1e-5 is read against
        scale = 1.0 / float(model(x).abs().max())
        model.head.classifier.weight.mul_(scale)
        model.head.classifier.bias.mul_(scale)
    with torch.inference_mode():
        ours = model(x)
    row["params_nasctl"] = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        try:
            export_model(spec, Path(tmp), "timm", model.state_dict(), seed=seed)
        except ExportError as exc:
            row["refused"] = str(exc)
            return row
        arch = json.loads((Path(tmp) / "timm_arch.json").read_text())
        theirs_model = runpy.run_path(str(Path(tmp) / "load_timm.py"))["build"](
            Path(tmp) / "timm_arch.json", Path(tmp) / "timm_weights.pt"
        )
    with torch.inference_mode():
        theirs = theirs_model(x)
    row["timm_class"] = arch["model_class"]
    row["arch_def"] = arch["arch_def"]
    row["params_timm"] = sum(p.numel() for p in theirs_model.parameters())
    row["params_equal"] = row["params_nasctl"] == row["params_timm"]
    row["max_abs_logit"] = float(ours.abs().max())
    row["max_abs_diff"] = float((ours - theirs).abs().max())
    return row


def main() -> None:
    try:
        import timm  # for its version; load_timm.py imports it itself
    except ImportError:
        raise SystemExit("bench/timm_bridge.py needs timm: pip install timm") from None

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--n-other", type=int, default=3, help="per other built-in space")
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "timm_bridge.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [check(n, get_baseline(n), seed=i) for i, n in enumerate(baseline_names())]
    space = load_space()
    for seed in range(args.n):
        spec = space.random_spec(seed, args.num_classes)
        rows.append(check(f"default space seed {seed}", spec, seed=seed))
    for name in ("photos", "tiny"):
        for seed in range(args.n_other):
            spec = load_space(name).random_spec(seed, args.num_classes)
            rows.append(check(f"{name} space seed {seed}", spec, seed=seed))
    for name, arch in EDGE_ARCHS.items():
        rows.append(check(name, parse_arch(arch), seed=0))
    done = [r for r in rows if "refused" not in r]
    summary = {
        "timm": timm.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "checked": len(done),
        "refused": len(rows) - len(done),
        "all_params_equal": all(r["params_equal"] for r in done),
        "max_abs_diff": max((r["max_abs_diff"] for r in done), default=None),
        "rows": rows,
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for r in rows:
        if "refused" in r:
            print(f"{r['name']:28s} refused: {r['refused']}")
        else:
            print(
                f"{r['name']:28s} {r['timm_class']:12s} params {r['params_nasctl']:>10,} / "
                f"{r['params_timm']:>10,}  max |diff| {r['max_abs_diff']:.2e} "
                f"(logits up to {r['max_abs_logit']:.3g})"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
