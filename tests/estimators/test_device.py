from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from estimators import (
    DeviceError,
    Recipe,
    SupernetRecipe,
    TrainDevice,
    evaluate,
    fit,
    fit_supernet,
    load_checkpoint,
    load_data,
    load_supernet,
    load_supernet_state,
    new_state,
    new_supernet_state,
    parse_device,
    resolve_device,
    save_checkpoint,
    save_supernet,
    train_and_evaluate,
)
from search_space import NasctlError, builtin_space_text, parse_arch
from tests.conftest import DIGITS_VAL_IMAGES, is_share_of
from tests.processes import run_python

TINY = parse_arch(
    "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s2_e2_c16_se0.25_hs,"
    "ir_k3_s2_c24_re,ir_k3_s2_c32_re,head_h32_hs_d0.2"
)
QUICK = Recipe(epochs=2, batch_size=32, train_images=128, bn_images=64, warmup_epochs=0.5)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", 32)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as the tests assume it (also on a machine with a GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch):
    """Two GPUs as torch.cuda reports them; ``bf16`` says whether they support bf16."""
    gpu = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu["bf16"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
    return gpu


# --- parsing and resolution ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("cpu", ("cpu", None)),
        ("CPU", ("cpu", None)),
        ("auto", ("auto", None)),
        ("cuda", ("cuda", None)),
        (" cuda:0 ", ("cuda", 0)),
        ("cuda:3", ("cuda", 3)),
    ],
)
def test_parse_device(text: str, parsed: tuple[str, int | None]) -> None:
    assert parse_device(text) == parsed


@pytest.mark.parametrize("text", ["gpu", "", "cuda:", "cuda:-1", "cuda:x", "cuda1", "mps", "tpu"])
def test_parse_device_refuses_other_names(text: str) -> None:
    with pytest.raises(DeviceError, match="device must be cpu, cuda, cuda:N or auto"):
        parse_device(text)


@pytest.mark.parametrize(
    ("device", "precision", "label"),
    [
        ("cpu", "auto", "cpu/fp32"),
        ("cpu", "fp32", "cpu/fp32"),
        ("cpu", "bf16", "cpu/bf16"),
        ("cpu", "fp16", "cpu/fp16"),
        ("auto", "auto", "cpu/fp32"),
        (None, "auto", "cpu/fp32"),
    ],
)
def test_resolve_on_a_machine_without_cuda(no_cuda, device, precision, label) -> None:
    resolved = resolve_device(device, precision)
    assert resolved.label == label and resolved.device == torch.device("cpu")
    assert not resolved.channels_last and not resolved.is_cuda  # today's CPU numbers


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_is_refused_without_cuda(no_cuda, device: str) -> None:
    with pytest.raises(DeviceError, match="sees no CUDA device on this machine") as info:
        resolve_device(device)
    assert isinstance(info.value, NasctlError) and "\n" not in str(info.value)


def test_bad_precision_is_refused() -> None:
    with pytest.raises(DeviceError, match="precision must be one of auto, fp32, bf16, fp16"):
        resolve_device("cpu", "fp8")


@pytest.mark.parametrize(
    ("device", "bf16", "precision", "label"),
    [
        ("cuda", True, "auto", "cuda:0 Fake GPU 0/bf16"),
        ("auto", True, "auto", "cuda:0 Fake GPU 0/bf16"),
        ("cuda:1", True, "auto", "cuda:1 Fake GPU 1/bf16"),
        ("cuda:1", False, "auto", "cuda:1 Fake GPU 1/fp16"),  # no bf16: fp16 + scaler
        ("cuda", True, "fp32", "cuda:0 Fake GPU 0/fp32"),
        ("cuda", True, "fp16", "cuda:0 Fake GPU 0/fp16"),
    ],
)
def test_resolve_with_cuda(fake_cuda, device, bf16, precision, label) -> None:
    fake_cuda["bf16"] = bf16
    resolved = resolve_device(device, precision)
    assert resolved.label == label and resolved.is_cuda and resolved.channels_last
    assert (resolved.scaler() is not None) == label.endswith("/fp16")


def test_cuda_index_past_the_last_gpu_and_bf16_without_support(fake_cuda) -> None:
    with pytest.raises(DeviceError, match=r"has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    fake_cuda["bf16"] = False
    with pytest.raises(DeviceError, match="bf16 is not supported by cuda:0"):
        resolve_device("cuda", "bf16")


# --- training on a device -----------------------------------------------------------------


def test_fp32_cpu_is_the_default_and_changes_nothing(digits) -> None:
    default = fit(new_state(TINY, digits, QUICK), digits)
    explicit = fit(new_state(TINY, digits, QUICK), digits, device=resolve_device("cpu", "fp32"))
    assert default.device == explicit.device == "cpu/fp32"
    assert default.history[-1]["train_loss"] == explicit.history[-1]["train_loss"]
    a, b = default.model.state_dict(), explicit.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


class _PrefetchingCpu(TrainDevice):
    """The CPU taking CUDA's path through ``fit``: each step's update runs before the
    next batch is read, augmented and normalised ahead of its turn."""

    @property
    def is_cuda(self) -> bool:
        return True

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield

    def seed_step(self, seed: int) -> None:
        pass

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels


def test_preparing_the_next_batch_ahead_changes_no_weight(digits, tmp_path: Path) -> None:
    """CUDA's prefetch draws the next batch's augmentation before the step commits; the
    state keeps the committed draws, so the weights equal the CPU's, resumed or not."""
    plain = fit(new_state(TINY, digits, QUICK), digits)
    ahead = _PrefetchingCpu(torch.device("cpu"))
    whole = fit(new_state(TINY, digits, QUICK), digits, device=ahead)
    state = new_state(TINY, digits, QUICK)

    def stop(p) -> None:
        if p.epoch == 1 and p.batch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(state, digits, on_progress=stop, device=ahead)
    resumed = fit(load_checkpoint(save_checkpoint(state, tmp_path / "c.pt")), digits, device=ahead)
    for other in (whole, resumed):
        a, b = plain.model.state_dict(), other.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert other.history[-1]["train_loss"] == plain.history[-1]["train_loss"]


def test_bf16_autocast_and_channels_last_train_on_cpu(digits, tmp_path: Path) -> None:
    device = resolve_device("cpu", "bf16", channels_last=True)
    seen: list[torch.dtype] = []
    state = new_state(TINY, digits, QUICK)
    conv = next(m for m in state.model.modules() if isinstance(m, nn.Conv2d))
    hook = conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    fit(state, digits, device=device)
    hook.remove()
    assert set(seen) == {torch.bfloat16}  # training, recalibration and evaluation autocast
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert state.device == "cpu/bf16" and torch.isfinite(
        torch.tensor(state.history[-1]["val_loss"])
    )
    # The checkpoint says where and at what precision it trained.
    path = save_checkpoint(state, tmp_path / "ckpt.pt")
    assert torch.load(path, weights_only=True)["device"] == "cpu/bf16"
    assert load_checkpoint(path).device == "cpu/bf16"
    # Evaluated at fp32 on the weights' device when no device is given.
    result = evaluate(state.model, digits.val_x, digits.val_y, digits.classes, digits.mean,
                      digits.std)  # fmt: skip
    assert is_share_of(result.top1, DIGITS_VAL_IMAGES) and result.images == DIGITS_VAL_IMAGES


def test_fp16_with_grad_scaler_resumes_exactly_on_cpu(digits, tmp_path: Path) -> None:
    device = resolve_device("cpu", "fp16")
    straight = fit(new_state(TINY, digits, QUICK), digits, device=device)
    assert straight.scaler_state is not None and straight.scaler_state["scale"] > 0

    def stop(p) -> None:
        if p.epoch == 1 and p.batch == 1:
            raise KeyboardInterrupt

    state = new_state(TINY, digits, QUICK)
    with pytest.raises(KeyboardInterrupt):
        fit(state, digits, on_progress=stop, device=device)
    path = save_checkpoint(state, tmp_path / "ckpt.pt")
    resumed = load_checkpoint(path)
    assert resumed.scaler_state == state.scaler_state and resumed.device == "cpu/fp16"
    fit(resumed, digits, device=device)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_result_records_the_device(digits) -> None:
    result = train_and_evaluate(TINY, digits, QUICK.replace(epochs=1), device="cpu")
    assert result.device == "cpu/fp32" and result.to_dict()["device"] == "cpu/fp32"
    bf16 = train_and_evaluate(TINY, digits, QUICK.replace(epochs=1), device=resolve_device(
        "cpu", "bf16"))  # fmt: skip
    assert bf16.device == "cpu/bf16"


def test_a_checkpoint_without_a_device_was_trained_on_the_cpu(digits, tmp_path: Path) -> None:
    state = new_state(TINY, digits, QUICK)
    path = save_checkpoint(state, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    del payload["device"], payload["scaler"]  # as written before devices were recorded
    torch.save(payload, path)
    assert load_checkpoint(path).device == "cpu/fp32"


def test_supernet_trains_and_scores_in_bf16_on_cpu(digits, tmp_path: Path) -> None:
    device = resolve_device("cpu", "bf16", channels_last=True)
    recipe = SupernetRecipe.of(epochs=1, batch_size=32, train_images=64, bn_images=0,
                               warmup_epochs=0.5)  # fmt: skip
    state = new_supernet_state(builtin_space_text("tiny"), digits, recipe, data_seed=0)
    fit_supernet(state, {32: digits}, device=device)
    assert state.device == "cpu/bf16" and state.history[-1]["train_loss"] > 0
    path = save_supernet(state, tmp_path / "sn.pt")
    assert load_supernet_state(path).device == "cpu/bf16"
    net = load_supernet(path)
    assert net.trained_device == "cpu/bf16"
    top1 = net.score(net.largest(), digits, recal_batches=1, batch_size=32, device=device)
    assert is_share_of(top1, DIGITS_VAL_IMAGES)


@pytest.mark.slow
def test_the_gpu_check_bench_runs_on_cpu(tmp_path: Path) -> None:
    """bench/gpu_check.py is what a GPU machine runs; its throughput part, tiny, here."""
    script = Path(__file__).parents[2] / "bench" / "gpu_check.py"
    out = tmp_path / "check.json"
    args = ["--device", "cpu", "--resolution", "32", "--batch-size", "4", "--steps", "2",
            "--warmup", "1", "--matmul-size", "64", "--threads", "1", "--skip-search",
            "--out", str(out)]  # fmt: skip
    done = run_python([str(script), *args], Path.cwd())  # a process forked with torch loaded
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu/fp32" and "OUT" in report["argv"]
    rates = report["throughput"]
    assert rates["timed_steps"] == {"fit": 2, "bare": 2}
    assert rates["fit"]["images_per_second"] > 0 and rates["matmul_tflops_measured"] > 0
    assert report["repeatability"] == {"bitwise_equal": True, "max_abs_diff": 0.0}  # on CPU
