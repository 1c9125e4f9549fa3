from __future__ import annotations

from pathlib import Path

import pytest
import torch

from estimators import DeviceError, get_recipe
from results import SearchConfig, run_search
from results._search_config import Event

RECIPE = get_recipe("search", batch_size=32)


def _config(space: Path, **kw) -> SearchConfig:
    defaults = dict(study="t", target="flops", space_path=space, trials=1, population=2,
                    recipe=RECIPE, images_per_candidate=64, baselines=False, threads=1)  # fmt: skip
    defaults.update(kw)
    return SearchConfig(**defaults)


def _warnings(space: Path, out: Path, **kw) -> list[str]:
    events: list[Event] = []
    run_search(_config(space, **kw), out, on_event=events.append)
    return [e.message for e in events if e.kind == "warning"]


def test_a_worker_timing_on_other_hardware_is_warned(tiny_space: Path, tmp_path: Path) -> None:
    study = run_search(_config(tiny_space), tmp_path)
    assert _warnings(tiny_space, tmp_path, trials=2) == []
    # The study as a worker on another machine would have made it.
    meta = study.user_attrs["nasctl"]
    study.set_user_attr("nasctl", {**meta, "latency": {**meta["latency"], "host": "gpu-box-7"}})
    warned = _warnings(tiny_space, tmp_path, trials=3)
    assert len(warned) == 1 and "gpu-box-7 (cpu)" in warned[0] and "--latency lut" in warned[0]
    assert "mix measured latencies" in warned[0]


def test_a_study_records_the_training_device_of_every_trial(
    tiny_space: Path, tmp_path: Path
) -> None:
    study = run_search(_config(tiny_space, trials=2, precision="bf16"), tmp_path)
    trained = [t for t in study.trials if "accuracy" in t.user_attrs]
    assert trained and {t.user_attrs["device"] for t in trained} == {"cpu/bf16"}


def test_a_cuda_device_is_refused_by_the_config(
    tiny_space: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="needs CUDA"):
        _config(tiny_space, device="cuda:1")
