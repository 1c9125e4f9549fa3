from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import results._export as export_mod
from estimators import LatencyConfig, get_recipe, load_data, new_state, save_checkpoint
from estimators._decode import decode_one
from estimators._loop import normalise, stats
from results import (
    EXPORT_FORMAT,
    ExportError,
    ExportFormat,
    export_model,
    exported_latency,
    load_exported,
    load_pt,
    random_weights,
    read_checkpoint,
    standalone_source,
)
from results._checkpoint import checkpoint_preprocessing
from results._exported import read_preprocessing
from results._preprocessing import Preprocessing
from results._winner import compare_winner
from search_space import (
    ArchSpec,
    baseline_names,
    build_model,
    format_arch,
    get_baseline,
    load_space,
    parse_arch,
)

# Small inputs keep every export under a second or two on 2 cores.
SPECS: dict[str, ArchSpec] = {
    **{name: get_baseline(name, 1.0, 32, 10) for name in baseline_names()},
    **{f"random{seed}": load_space().random_spec(seed, 10) for seed in (1, 2)},
}
MODEL_FORMATS = [ExportFormat.PY, ExportFormat.TORCHSCRIPT, ExportFormat.ONNX, ExportFormat.PT]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine more threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def weights(name: str) -> dict[str, torch.Tensor]:
    return random_weights(SPECS[name])


@pytest.mark.parametrize("name", SPECS)
def test_json_and_arch_parse_back_equal(name: str, tmp_path: Path) -> None:
    spec = SPECS[name]
    res = export_model(spec, tmp_path / "a.json", "json")
    assert res.max_abs_diff is None and res.latency_backend is None
    assert ArchSpec.from_json(res.path.read_text()) == spec
    res = export_model(spec, tmp_path / "a.arch", ExportFormat.ARCH)
    assert parse_arch(res.path.read_text().strip()) == spec
    assert len(res.path.read_text().splitlines()) == 1


def test_export_without_checkpoint_checks_logits_of_about_one(tmp_path: Path) -> None:
    """A training init's logits are ~1e-10 on a deep network; an untrained export must
    still be checked against logits a 1e-4 tolerance can tell apart."""
    spec = get_baseline("mobilenet_v3_large", 1.0, 32, 10)
    res = export_model(spec, tmp_path, ExportFormat.ONNX)
    # 5,000 times the tolerance at least (a training init gives ~1e-10). No upper bound: on
    # inputs other than the calibration batch the largest logit varies 0.6-17 (measured).
    assert res.max_abs_output is not None and res.max_abs_output >= 0.5
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4


@pytest.mark.parametrize("fmt", MODEL_FORMATS, ids=str)
@pytest.mark.parametrize("name", SPECS)
def test_model_formats_reproduce_the_model(name: str, fmt: ExportFormat, tmp_path: Path) -> None:
    spec = SPECS[name]
    res = export_model(spec, tmp_path, fmt, weights(name), seed=3, freeze=name == "random1")
    assert res.path.parent == tmp_path and res.path.name == fmt.default_name
    assert all(f.is_file() for f in res.files)
    assert res.max_abs_output is not None and res.max_abs_output > 0.1  # a real check
    assert res.max_abs_diff is not None
    assert res.max_abs_diff <= 1e-4 * max(1.0, res.max_abs_output)
    assert res.input_shape == (2, 3, spec.resolution, spec.resolution)
    print(f"{name} {fmt.value}: max abs diff {res.max_abs_diff:.2e}")

    # Read back independently of the verification path, at batch 1 (an input of its own
    # seed: the global generator's state would depend on which tests ran before).
    model = build_model(spec, seed=99)
    model.load_state_dict(weights(name))
    x = torch.randn(
        1, 3, spec.resolution, spec.resolution, generator=torch.Generator().manual_seed(7)
    )
    with torch.inference_mode():
        expected = model.eval()(x).numpy()
    if fmt is ExportFormat.ONNX:
        session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]  # dynamic batch axis
        assert res.latency_backend == "onnxruntime"
    elif fmt is ExportFormat.TORCHSCRIPT:
        with torch.inference_mode():
            got = torch.jit.load(str(res.path))(x).numpy()
    elif fmt is ExportFormat.PT:
        got_spec, got_model = load_pt(res.path)
        assert got_spec == spec
        with torch.inference_mode():
            got = got_model(x).numpy()
    else:
        assert res.files == (res.path, res.path.with_name(res.path.stem + "_weights.pt"))
        got = load_exported(res.path, fmt)(x).numpy()
    # export_model's tolerance: 1e-4, scaled by the largest logit above 1 (random1 is frozen:
    # its folded BatchNorm moved a logit of 15.4 by 1.4e-4 on one input).
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


_TORCH_ONLY = r"""
import runpy, sys, torch
torch.set_num_threads(1)
paths = sys.argv[1:]
outs = {}
for p in paths:
    model = runpy.run_path(p)["load_model"]()
    with torch.inference_mode():
        outs[p] = model(torch.load(p[:-3] + ".input.pt"))
ours = sorted(m for m in sys.modules if m.split(".")[0] in
              {"nasctl", "search_space", "estimators", "results"})
torch.save({"outs": outs, "ours": ours}, paths[0][:-3] + ".outputs.pt")
sys.argv = [paths[0]]
runpy.run_path(paths[0], run_name="__main__")  # as a script: weights found next to it
"""


@pytest.mark.slow
def test_py_runs_with_torch_alone(tmp_path: Path) -> None:
    """Every generated file, run in an isolated interpreter (``-I``: no cwd, no
    PYTHONPATH), gives nasctl's logits and never imports a nasctl package."""
    paths, expected = [], {}
    for name, spec in SPECS.items():
        res = export_model(spec, tmp_path / f"{name}.py", "py", weights(name))
        x = torch.randn(3, 3, spec.resolution, spec.resolution)
        torch.save(x, tmp_path / f"{name}.input.pt")
        model = build_model(spec)
        model.load_state_dict(weights(name))
        with torch.inference_mode():
            expected[str(res.path)] = model.eval()(x)
        paths.append(str(res.path))
    cmd = [sys.executable, "-I", "-c", _TORCH_ONLY, *paths]
    run = subprocess.run(cmd, check=True, cwd=tmp_path, timeout=120, capture_output=True, text=True)
    assert "logits (1, 10)" in run.stdout
    report = torch.load(paths[0][:-3] + ".outputs.pt")
    assert report["ours"] == []
    for p, want in expected.items():
        torch.testing.assert_close(report["outs"][p], want, rtol=0, atol=1e-4)


def test_generated_source_runs_every_block_option() -> None:
    # Swish, a 7x7 depthwise kernel, SE and residuals: the generated file has no copy of
    # the blocks, so an option the plan describes needs no change in the generator.
    spec = parse_arch(
        "r32_n10,stem_k3_s2_c16_sw,ir_k7_s1_e4_c16_se0.25_sw,ds_k7_s2_c24_r6,"
        "ir_k7_s1_c24_se0.25_hs,head_c64_sw_h128_sw_d0.2"
    )
    namespace: dict[str, object] = {"__name__": "generated"}
    exec(compile(standalone_source(spec), "generated.py", "exec"), namespace)
    net = namespace["Net"]()  # type: ignore[operator]
    model = build_model(spec, seed=5).eval()
    net.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(net.eval()(x), model(x), rtol=0, atol=1e-5)


def test_generated_source_names_match_nasctl_state_dict() -> None:
    spec = SPECS["mobilenet_v3_large"]
    namespace: dict[str, object] = {"__name__": "generated"}
    exec(compile(standalone_source(spec), "generated.py", "exec"), namespace)
    net = namespace["Net"]()  # type: ignore[operator]
    ours = build_model(spec).state_dict()
    theirs = net.state_dict()
    assert list(theirs) == list(ours)
    assert all(theirs[k].shape == ours[k].shape for k in ours)


# --- checkpoints ------------------------------------------------------------------------

SMALL = SPECS["mobilenet_v3_small"]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": sd, "spec": SMALL.to_dict(), "epoch": 3},  # training checkpoint
        lambda sd: {"format": EXPORT_FORMAT, "state_dict": sd, "spec": SMALL.to_dict()},
        lambda sd: {"state_dict": sd, "spec": SMALL.to_json()},
    ],
    ids=["bare", "state_dict key", "model key + spec", "pt export", "spec as json"],
)
def test_read_checkpoint_layouts(wrap, tmp_path: Path) -> None:
    sd = weights("mobilenet_v3_small")
    torch.save(wrap(sd), tmp_path / "c.pt")
    state, recorded = read_checkpoint(tmp_path / "c.pt", SMALL)
    assert list(state) == list(sd)
    assert recorded in (None, SMALL)


def test_pt_export_reads_back_as_checkpoint(tmp_path: Path) -> None:
    res = export_model(SMALL, tmp_path / "m.pt", "pt", weights("mobilenet_v3_small"))
    state, recorded = read_checkpoint(res.path)
    assert recorded == SMALL
    assert all(torch.equal(state[k], v) for k, v in weights("mobilenet_v3_small").items())


BAD_CHECKPOINTS = [
    ("list", [1, 2, 3], "must hold a state_dict"),
    ("no weights", {"epoch": 1}, "must hold a state_dict"),
    ("other arch", {"model": "SD", "spec": SPECS["mobilenet_v2"].to_dict()}, "different arch"),
    ("bad spec", {"model": "SD", "spec": {"stem": {}}}, "invalid spec"),
]


@pytest.mark.parametrize(
    ("payload", "message"), [c[1:] for c in BAD_CHECKPOINTS], ids=[c[0] for c in BAD_CHECKPOINTS]
)
def test_read_checkpoint_refuses(payload, message: str, tmp_path: Path) -> None:
    if isinstance(payload, dict) and payload.get("model") == "SD":
        payload = {**payload, "model": weights("mobilenet_v3_small")}
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(ExportError, match=message):
        read_checkpoint(tmp_path / "c.pt", SMALL)


def test_read_checkpoint_refuses_missing_and_pickled_modules(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(ExportError, match="weights_only"):
        read_checkpoint(tmp_path / "module.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ExportError, match="cannot be read"):
        read_checkpoint(tmp_path / "junk.pt")


def test_state_dict_of_another_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not fit the architecture: missing"):
        export_model(SMALL, tmp_path, "onnx", weights("mobilenet_v1"))
    other = SMALL.replace(num_classes=7)
    with pytest.raises(ExportError, match="does not fit the architecture"):
        export_model(other, tmp_path, "pt", weights("mobilenet_v3_small"))


# --- options and failures ------------------------------------------------------------------


BAD_OPTIONS = [
    ("format", {"fmt": "tflite"}, "format must be one of json, arch, py"),
    ("opset", {"fmt": "onnx", "opset": 16}, "opset must be an integer >= 17"),
    ("tolerance", {"fmt": "onnx", "tolerance": 0}, "tolerance must be a number in"),
    ("batch", {"fmt": "onnx", "batch": 0}, "batch must be a positive integer"),
    ("py suffix", {"fmt": "py", "out": "model.txt"}, "out must end with .py"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS]
)
def test_bad_options_are_refused(kwargs: dict, message: str, tmp_path: Path) -> None:
    kwargs = dict(kwargs)
    out = tmp_path / kwargs.pop("out", "x")
    with pytest.raises(ExportError, match=message):
        export_model(SMALL, out, **kwargs)


def test_out_without_suffix_is_a_directory(tmp_path: Path) -> None:
    res = export_model(SMALL, tmp_path / "new" / "dir", "json")
    assert res.path == tmp_path / "new" / "dir" / "model.json"


def test_mismatch_over_tolerance_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_mod.load_exported

    def off_by_a_bit(path, fmt, optimized=True):
        run = real(path, fmt, optimized)
        return lambda x: torch.as_tensor(run(x)) + 1e-3

    monkeypatch.setattr(export_mod, "load_exported", off_by_a_bit)
    with pytest.raises(ExportError, match=r"differs from the PyTorch model by 0\.001"):
        export_model(SMALL, tmp_path, "pt", weights("mobilenet_v3_small"))


def test_result_to_dict_is_json(tmp_path: Path) -> None:
    res = export_model(SMALL, tmp_path, "pt", weights("mobilenet_v3_small"))
    data = json.loads(json.dumps(res.to_dict()))
    assert data["format"] == "pt" and data["max_abs_diff"] == 0.0
    assert data["arch"].startswith("r32_n10,")
    assert res.latency_backend == "torch"
    with pytest.raises(ExportError, match="not a runnable model"):
        load_exported(tmp_path / "x.json", "json")


@pytest.mark.parametrize(
    ("fmt", "backend"),
    [("onnx", "onnxruntime"), ("torchscript", "torchscript"), ("py", "torch"), ("pt", "torch")],
)
def test_exported_file_is_timed_with_its_runtime(fmt: str, backend: str, tmp_path: Path) -> None:
    res = export_model(SMALL, tmp_path, fmt, weights("mobilenet_v3_small"))
    fast = LatencyConfig(rounds=2, repeats=3, min_warmup=3, max_warmup=6)
    timing = exported_latency(res, threads=1, config=fast)
    assert timing.backend == backend and timing.threads == 1
    assert timing.name == res.path.name
    assert 0 < timing.p10_us <= timing.median_us <= timing.p90_us
    assert timing.count >= 2 * 3


def test_exported_latency_refuses_text_formats(tmp_path: Path) -> None:
    res = export_model(SMALL, tmp_path, "json")
    with pytest.raises(ExportError, match="not a runnable model to time"):
        exported_latency(res)


# --- what deployment needs: resolution, mean/std, class names ---------------------------

PREP_SPEC = get_baseline("mobilenet_v3_small", 1.0, 32, 2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-class photo folder cut from scikit-learn's two sample photos (colour, so the
    three channels' statistics differ), and one of the photos whole as ``flower.jpg``."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    root = tmp_path_factory.mktemp("photos")
    for name in ("china", "flower"):
        image = load_sample_image(f"{name}.jpg")
        (root / "tree" / name).mkdir(parents=True)
        for i in range(3):
            crop = image[i * 100 : i * 100 + 200, i * 120 : i * 120 + 240]
            Image.fromarray(crop).save(root / "tree" / name / f"{i}.jpg")
    Image.fromarray(load_sample_image("flower.jpg")).save(root / "flower.jpg")
    return root


@pytest.fixture(scope="module")
def photo_checkpoint(photos: Path) -> Path:
    """A nasctl training checkpoint on the photo folder: its data record holds the
    folder's per-channel mean/std and class names. Weights: ``random_weights`` (logits of
    about 1, so that a 1e-4 agreement means something)."""
    data = load_data(photos / "tree", 32, disk_cache=False, mode="memory")
    state = new_state(PREP_SPEC, data, get_recipe("search"))
    state.model.load_state_dict(random_weights(PREP_SPEC, seed=3))
    return save_checkpoint(state, photos / "checkpoint.pt")


def test_checkpoint_preprocessing_is_the_data_record(photo_checkpoint: Path) -> None:
    prep = checkpoint_preprocessing(photo_checkpoint, PREP_SPEC)
    payload = torch.load(photo_checkpoint, weights_only=True)["data"]
    assert prep == Preprocessing(32, tuple(payload["mean"]), tuple(payload["std"]),
                                 ("china", "flower"))  # fmt: skip
    assert len(set(prep.mean)) == 3  # colour photos: a channel mix-up would show
    bare = photo_checkpoint.with_name("bare.pt")
    torch.save(build_model(PREP_SPEC).state_dict(), bare)
    assert checkpoint_preprocessing(bare, PREP_SPEC) is None
    with pytest.raises(ExportError, match="classes lists 2 names but the architecture has 10"):
        checkpoint_preprocessing(photo_checkpoint, get_baseline("mobilenet_v3_small", 1.0, 32, 10))


@pytest.mark.parametrize("fmt", MODEL_FORMATS, ids=str)
def test_every_model_format_carries_the_preprocessing(
    fmt: ExportFormat, photo_checkpoint: Path, tmp_path: Path
) -> None:
    state, _ = read_checkpoint(photo_checkpoint)
    prep = checkpoint_preprocessing(photo_checkpoint, PREP_SPEC)
    res = export_model(PREP_SPEC, tmp_path / "with", fmt, state, preprocessing=prep)
    assert res.preprocessing == prep and res.trained
    assert read_preprocessing(res.path, fmt) == prep
    assert res.to_dict()["preprocessing"]["classes"] == ["china", "flower"]
    plain = export_model(PREP_SPEC, tmp_path / "without", fmt)  # random weights, no record
    assert read_preprocessing(plain.path, fmt) is None and not plain.trained
    if fmt is ExportFormat.ONNX:  # the file says whether its weights are trained
        meta = ort.InferenceSession(str(plain.path)).get_modelmeta().custom_metadata_map
        assert meta["weights"] == "random (untrained, seed 0)"
        assert meta["arch"] == format_arch(PREP_SPEC)


def test_preprocessing_must_fit_the_architecture(tmp_path: Path) -> None:
    prep = Preprocessing(64, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), ("a", "b"))
    with pytest.raises(ExportError, match="preprocessing is for 64 px and 2 classes"):
        export_model(PREP_SPEC, tmp_path, "onnx", preprocessing=prep)


def _deploy_input(image: Path, meta: dict[str, str]) -> np.ndarray:
    """What a deployment does with nothing but the ONNX file's metadata, PIL and numpy,
    following its ``preprocessing`` recipe."""
    from PIL import Image

    r = int(meta["resolution"])
    mean, std = np.array(json.loads(meta["mean"])), np.array(json.loads(meta["std"]))
    with Image.open(image) as img:
        img.draft("RGB", (r, r))
        rgb = img.convert("RGB")
    scale = r / min(rgb.size)
    size = (max(r, round(rgb.width * scale)), max(r, round(rgb.height * scale)))
    rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (size[0] - r) // 2, (size[1] - r) // 2
    rgb = rgb.crop((left, top, left + r, top + r))
    x = (np.asarray(rgb, dtype=np.float32) / 255 - mean) / std
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def test_onnx_metadata_alone_reproduces_pytorch_on_a_photo(
    photos: Path, photo_checkpoint: Path, tmp_path: Path
) -> None:
    state, _ = read_checkpoint(photo_checkpoint)
    prep = checkpoint_preprocessing(photo_checkpoint, PREP_SPEC)
    res = export_model(PREP_SPEC, tmp_path, "onnx", state, preprocessing=prep)
    # nasctl's side: its decoder and normalisation, the checkpoint's statistics.
    assert prep is not None
    image = torch.from_numpy(decode_one((str(photos / "flower.jpg"), 32)).copy())[None]
    model = build_model(PREP_SPEC)
    model.load_state_dict(state)
    with torch.inference_mode():
        expected = model.eval()(normalise(image, *stats(prep.mean, prep.std, image.device)))
    # The deployment's side: the ONNX file, its metadata, PIL and numpy.
    session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == ["china", "flower"]
    got = session.run(None, {"input": _deploy_input(photos / "flower.jpg", meta)})[0]
    assert float(np.abs(expected.numpy()).max()) > 0.1  # logits that a check can tell apart
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)
    # The statistics matter: the defaults an unrecorded export would guess are far off.
    guessed = meta | {"mean": "[0.5, 0.5, 0.5]", "std": "[0.25, 0.25, 0.25]"}
    wrong = session.run(None, {"input": _deploy_input(photos / "flower.jpg", guessed)})[0]
    assert float(np.abs(wrong - expected.numpy()).max()) > 1e-2


def test_py_export_constants_and_preprocess_reproduce_pytorch(
    photos: Path, photo_checkpoint: Path, tmp_path: Path
) -> None:
    import runpy

    state, _ = read_checkpoint(photo_checkpoint)
    prep = checkpoint_preprocessing(photo_checkpoint, PREP_SPEC)
    assert prep is not None
    res = export_model(PREP_SPEC, tmp_path / "m.py", "py", state, preprocessing=prep)
    ns = runpy.run_path(str(res.path))
    assert (ns["MEAN"], ns["STD"], ns["CLASSES"]) == (prep.mean, prep.std, ["china", "flower"])
    assert ns["WEIGHTS"] == "trained" and ns["ARCH"] == format_arch(PREP_SPEC)
    net = ns["load_model"]()
    assert net.classes == ["china", "flower"] and net.resolution == 32
    image = torch.from_numpy(decode_one((str(photos / "flower.jpg"), 32)).copy())
    model = build_model(PREP_SPEC)
    model.load_state_dict(state)
    with torch.inference_mode():
        expected = model.eval()(normalise(image[None], *stats(prep.mean, prep.std, image.device)))
        got = net(ns["preprocess"](image))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


# --- the compare winner ----------------------------------------------------------------

#: Candidates of a compare table: (name, top-1, x V2, baselines beaten).
COMPARE_ROWS = [
    ("trial_1", 0.90, 1.20, ""),  # most accurate, but beats no baseline
    ("trial_2", 0.80, 0.90, "mobilenet_v2"),
    ("trial_3", 0.70, 0.60, "mobilenet_v2, mobilenet_v3_large"),
]
COMPARE_SPECS = {
    f"trial_{i}": get_baseline("mobilenet_v3_small", width, 32, 10)
    for i, width in ((1, 1.0), (2, 0.75), (3, 0.5))
}


def write_compare_folder(folder: Path, rows: list[tuple[str, float, float, str]]) -> Path:
    """A compare folder as `nasctl compare` leaves it: compare.csv (run_compare's columns)
    and a training checkpoint per model in models/, trained weights replaced by
    ``random_weights`` (seeded by the trial number) to tell them apart."""
    import pandas as pd

    data = load_data("digits", 32)
    records = []
    for name, acc, ratio, beats in rows:
        spec = COMPARE_SPECS[name]
        number = int(name.split("_")[1])
        state = new_state(spec, data, get_recipe("search"))
        state.model.load_state_dict(random_weights(spec, seed=number))
        save_checkpoint(state, folder / "models" / f"{name}.pt")
        records.append((name, False, number, acc, ratio, beats, format_arch(spec)))
    v2 = get_baseline("mobilenet_v2", 1.0, 32, 10)
    records.append(("mobilenet_v2", True, None, 0.75, 1.0, "", format_arch(v2)))
    frame = pd.DataFrame(
        records,
        columns=["name", "baseline", "trial", "accuracy", "ratio_to_v2", "dominates", "arch"],
    )
    frame["top5"] = frame["accuracy"]
    frame["ratio_to_v2_runs"] = frame["ratio_to_v2"].map(str)
    frame.to_csv(folder / "compare.csv", index=False)
    return folder


def test_compare_winner_is_the_most_accurate_that_beats_a_baseline(tmp_path: Path) -> None:
    winner = compare_winner(write_compare_folder(tmp_path, COMPARE_ROWS))
    assert (winner.name, winner.trial, winner.accuracy) == ("trial_2", 2, 0.80)
    assert winner.beats == ("mobilenet_v2",) and winner.spec == COMPARE_SPECS["trial_2"]
    assert winner.checkpoint == tmp_path / "models" / "trial_2.pt"


def test_compare_winner_ties_go_to_the_faster(tmp_path: Path) -> None:
    rows = [("trial_2", 0.8, 0.9, "mobilenet_v2"), ("trial_3", 0.8, 0.6, "mobilenet_v2")]
    assert compare_winner(write_compare_folder(tmp_path, rows)).name == "trial_3"


def test_compare_winner_is_chosen_on_val_and_reports_test(tmp_path: Path) -> None:
    """Picking by test accuracy would make the shipped model's test figure optimistic."""
    import pandas as pd

    rows = [("trial_2", 0.80, 0.9, "mobilenet_v2"), ("trial_3", 0.70, 0.9, "mobilenet_v2")]
    folder = write_compare_folder(tmp_path, rows)
    frame = pd.read_csv(folder / "compare.csv")
    frame["val_accuracy"] = frame["name"].map({"trial_2": 0.60, "trial_3": 0.75}).fillna(0.7)
    frame.to_csv(folder / "compare.csv", index=False)
    winner = compare_winner(folder)
    assert (winner.name, winner.accuracy) == ("trial_3", 0.70)


def test_compare_winner_refusals(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no compare results at"):
        compare_winner(tmp_path / "nothing")
    folder = write_compare_folder(tmp_path / "none", [("trial_1", 0.9, 1.2, "")])
    with pytest.raises(ExportError, match=r"no candidate in .* beats a baseline"):
        compare_winner(folder)
    folder = write_compare_folder(tmp_path / "moved", COMPARE_ROWS)
    (folder / "models" / "trial_2.pt").unlink()
    with pytest.raises(ExportError, match=r"trial_2's trained weights .* are missing"):
        compare_winner(folder)
    folder = write_compare_folder(tmp_path / "stale", COMPARE_ROWS)
    (folder / "models" / "trial_3.pt").replace(folder / "models" / "trial_2.pt")
    with pytest.raises(ExportError, match="not the trial_2 that"):
        compare_winner(folder)
