"""The latency protocol: statistics, backends, BatchNorm folding, interleaving, the lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import estimators._latency as latency_module
from estimators import (
    Backend,
    LatencyConfig,
    LatencyError,
    LockTimeout,
    Target,
    fold_batchnorm,
    latency_lock,
    measure,
    measure_many,
    part_target,
)
from estimators._latency import as_target, summarize
from search_space import build_model, parse_arch

TINY = "r32_n10,stem_k3_s2_c8_re,ir_k3_s2_e3_c16_se0.25_hs,ir_k5_s1_e3_c16_re,head_c32_hs_d0"
FAST = LatencyConfig(rounds=2, repeats=3, min_warmup=3, max_warmup=6)


@pytest.fixture(autouse=True)
def private_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests take their own lock file, so they neither wait for nor disturb real runs."""
    path = tmp_path / "latency.lock"
    monkeypatch.setenv("NASCTL_LATENCY_LOCK", str(path))
    return path


# --- statistics -------------------------------------------------------------------------


def test_summarize_matches_numpy_linear_percentiles() -> None:
    s = summarize([float(v) for v in range(1, 11)])
    assert s == pytest.approx(
        {"median_us": 5.5, "p10_us": 1.9, "p90_us": 9.1, "iqr_us": 4.5, "mean_us": 5.5, "count": 10}
    )


def test_summarize_one_sample_and_empty() -> None:
    s = summarize([7.0])
    assert s["median_us"] == s["p10_us"] == s["p90_us"] == 7.0 and s["iqr_us"] == 0.0
    with pytest.raises(LatencyError, match="at least one"):
        summarize([])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threads": 0}, "threads must be a positive integer"),
        ({"rounds": -1}, "rounds must be a positive integer"),
        ({"repeats": True}, "repeats must be a positive integer"),
        ({"backend": "tflite"}, "backend must be one of torch, onnxruntime, torchscript"),
        ({"device": "tpu"}, "device must be 'cpu' or 'cuda"),
        ({"min_warmup": 10, "max_warmup": 5}, "max_warmup must be >= min_warmup"),
        ({"steady_tolerance": 0.0}, "steady_tolerance must be in"),
    ],
)
def test_config_refuses_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(LatencyError, match=message):
        LatencyConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(LatencyError, match="no CUDA device"):
        LatencyConfig(device="cuda")


# --- preparing models -------------------------------------------------------------------


def test_fold_batchnorm_keeps_outputs_and_leaves_the_original() -> None:
    model = build_model(parse_arch(TINY), seed=1).eval()
    # Non-trivial running statistics, so that folding has something to fold.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_fold_in_place_folds_the_module_itself_with_the_same_outputs() -> None:
    model = build_model(parse_arch(TINY), seed=1).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = model(x)
    assert fold_batchnorm(model, inplace=True) is model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model, inplace=True) is model  # again: nothing left to fold
    with torch.inference_mode():
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)


def test_a_callers_module_is_timed_unchanged_a_spec_built_one_in_place() -> None:
    """Only a module built for the timing (from a spec or a part) is folded in place: a
    module the caller passes keeps its BatchNorm, its mode and its gradients."""
    config = LatencyConfig(rounds=1, repeats=1, min_warmup=1, max_warmup=1)
    mine = build_model(parse_arch(TINY), seed=1).train()
    measure(Target("mine", mine, (1, 3, 32, 32)), config)
    assert mine.training and any(isinstance(m, nn.BatchNorm2d) for m in mine.modules())
    assert all(p.requires_grad for p in mine.parameters())
    built = as_target(parse_arch(TINY))
    assert built.private and not Target("mine", mine, (1, 3, 32, 32)).private
    measure(built, config)
    assert built.module is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in built.module.modules())


def test_part_targets_take_the_input_their_part_sees() -> None:
    spec = parse_arch(TINY)
    for part in spec.parts():
        target = part_target(part, spec.num_classes)
        out = target.module.eval()(torch.zeros(target.input_shape))
        if part.name == "head":
            assert out.shape == (1, spec.num_classes)
        else:
            assert out.shape[-1] == part.out_size


# --- measuring --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(Backend))
def test_measure_each_backend(backend: Backend) -> None:
    config = LatencyConfig(backend=backend, rounds=2, repeats=3, min_warmup=3, max_warmup=6)
    r = measure(parse_arch(TINY), config)
    assert r.backend == backend.value and r.device == "cpu" and r.threads == 1
    assert r.count == 6 and 3 <= r.warmup <= 9
    assert 0 < r.p10_us <= r.median_us <= r.p90_us
    assert r.iqr_us >= 0 and r.mean_us > 0
    assert r.ratio_to_reference is None
    assert {"torch", "onnxruntime", "python", "cpu"} <= set(r.versions)
    assert r.to_dict()["iqr_ratio"] == pytest.approx(r.iqr_ratio)


def test_measure_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    measure(parse_arch(TINY), LatencyConfig(threads=2, rounds=1, repeats=2, min_warmup=3))
    assert torch.get_num_threads() == before


CALLS: list[str] = []


class Busy(nn.Module):
    """Spins for a fixed time and records its calls: a model of known latency."""

    def __init__(self, label: str, seconds: float) -> None:
        super().__init__()
        self.label, self.seconds = label, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CALLS.append(self.label)
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return x


def _busy(label: str, seconds: float) -> Target:
    return Target(label, Busy(label, seconds), (1, 1))


def test_rounds_interleave_and_rotate() -> None:
    CALLS.clear()
    config = LatencyConfig(rounds=3, repeats=2, min_warmup=3, max_warmup=3)
    measure_many([_busy("a", 0), _busy("b", 0)], config, reference=_busy("r", 0))
    warmup = 3 * 3  # three models, one chunk of three calls each
    timed = CALLS[warmup:]
    blocks = [label for i, label in enumerate(timed) if i == 0 or timed[i - 1] != label]
    assert blocks == ["a", "b", "r", "b", "r", "a", "r", "a", "b"]


class _Clock:
    """The latency module's clock, moved only by the calls below: a call costs exactly
    its latency, whatever else the machine is doing."""

    def __init__(self) -> None:
        self.ns = 0

    def perf_counter_ns(self) -> int:
        return self.ns

    def costing(self, us: int) -> Callable[[torch.Tensor], object]:
        def call(x: torch.Tensor) -> object:
            self.ns += us * 1000
            return x

        return call


def test_equal_windows_give_fast_models_more_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(latency_module, "time", clock)
    costs = {"slow": 2000, "fast": 200}  # us a call
    models = [Target(name, None, (1, 1), clock.costing(us)) for name, us in costs.items()]
    config = LatencyConfig(rounds=2, repeats=4, min_warmup=8, max_warmup=16)
    slow, fast = measure_many(models, config)
    assert (slow.median_us, fast.median_us) == (2000.0, 200.0)
    # The slow model's 4 calls a round set the window (8 ms): the fast one gets 40 a round.
    assert (slow.count, fast.count) == (2 * 4, 2 * 40)
    fixed = LatencyConfig(rounds=2, repeats=4, min_warmup=3, max_warmup=3, equal_windows=False)
    assert [r.count for r in measure_many(models, fixed)] == [2 * 4, 2 * 4]


def test_ratio_to_reference() -> None:
    config = LatencyConfig(rounds=3, repeats=5, min_warmup=3, max_warmup=6)
    slow, fast = measure_many(
        [_busy("slow", 0.002), _busy("fast", 0.0005)], config, reference=_busy("ref", 0.001)
    )
    assert slow.reference == "ref"
    # Wide bounds: a busy-wait on a time-sliced, shared CPU can be stretched.
    assert slow.ratio_to_reference is not None and fast.ratio_to_reference is not None
    assert 1.3 < slow.ratio_to_reference < 4.0
    assert 0.15 < fast.ratio_to_reference < 0.8
    assert slow.median_us >= 2000 and slow.reference_median_us is not None
    assert slow.reference_median_us >= 1000


def test_measure_many_refuses_bad_input() -> None:
    with pytest.raises(LatencyError, match="at least one model"):
        measure_many([], FAST)
    with pytest.raises(LatencyError, match="one name per model"):
        measure_many([parse_arch(TINY)], FAST, names=["a", "b"])
    with pytest.raises(LatencyError, match="ArchSpec or a Target"):
        measure_many([nn.ReLU()], FAST)  # type: ignore[list-item]


# --- the machine-wide lock --------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from estimators import latency_lock
    with latency_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_lock_excludes_another_process(private_lock: Path) -> None:
    proc = _hold(private_lock, 1.0)
    try:
        with (
            pytest.raises(LockTimeout, match=r"held .* for more than 0\.1 s"),
            latency_lock(private_lock, timeout=0.1),
        ):
            pass
        with pytest.raises(LockTimeout):
            measure(parse_arch(TINY), FAST, lock_timeout=0.1)  # the env lock path
        start = time.monotonic()
        with latency_lock(private_lock, timeout=10):
            waited = time.monotonic() - start
        assert waited > 0.3  # the holder's second had to run out first
    finally:
        proc.wait(timeout=10)


@pytest.mark.slow
def test_lock_is_reentrant_in_one_thread(private_lock: Path) -> None:
    with latency_lock(private_lock, timeout=1), latency_lock(private_lock, timeout=1):
        pass
    # Released: another process's non-blocking flock (the lock's whole protocol) succeeds.
    probe = "import fcntl, sys; fcntl.flock(open(sys.argv[1], 'w'), fcntl.LOCK_EX | fcntl.LOCK_NB)"
    subprocess.run([sys.executable, "-c", probe, str(private_lock)], check=True, timeout=10)


def test_a_ready_callable_is_timed_as_it_is() -> None:
    seen: list[tuple[int, ...]] = []

    def call(x: torch.Tensor) -> None:
        seen.append(tuple(x.shape))
        time.sleep(0.002)

    (r,) = measure_many([Target("exported", None, (1, 3, 8, 8), call=call)], FAST)
    assert r.name == "exported" and set(seen) == {(1, 3, 8, 8)}
    assert r.median_us >= 2000


def test_a_target_with_nothing_to_run_is_refused() -> None:
    with pytest.raises(LatencyError, match="neither a module nor a callable"):
        measure(Target("empty", None, (1, 3, 8, 8)), FAST)
