"""A study knows its data by content: workers may name the same files at another path
(another machine), and other files are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image

from estimators import _data, get_recipe
from results import SearchConfig, StudyError, run_search
from results._study import StudyMeta, check_meta


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    _data._MEMORY.clear()


def _folder(root: Path, classes: tuple[str, ...], per_class: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                root / name / f"{i:02d}.png"
            )
    return root


def _config(space: Path, data: Path, trials: int) -> SearchConfig:
    return SearchConfig(study="s", target="flops", space_path=space, data=str(data),
                        trials=trials, population=2, recipe=get_recipe("search", batch_size=16),
                        images_per_candidate=32, baselines=False, threads=1)  # fmt: skip


def test_the_same_files_at_another_path_resume_the_study_and_others_are_refused(
    tiny_space: Path, tmp_path: Path
) -> None:
    here = _folder(tmp_path / "machine-a" / "photos", ("cat", "dog", "owl"))
    out = tmp_path / "study"
    first = run_search(_config(tiny_space, here, trials=1), out)
    identity = first.user_attrs["nasctl"]["data_id"]
    assert identity.startswith("folder:3c:48f:")
    there = tmp_path / "machine-b" / "mounted" / "elsewhere"
    shutil.copytree(here, there)
    _data._MEMORY.clear()
    second = run_search(_config(tiny_space, there, trials=2), out)
    assert len(second.get_trials(states=(TrialState.COMPLETE,))) == 2
    other = _folder(tmp_path / "machine-c" / "photos", ("cat", "dog", "owl"), seed=1)
    (other / "owl" / "15.png").unlink()  # same classes, one file fewer
    with pytest.raises(StudyError, match=r"another data \(by content\)"):
        run_search(_config(tiny_space, other, trials=3), out)


def _meta(data: str, data_id: str) -> StudyMeta:
    return StudyMeta(target="flops", space_sha="s", space_text="", data=data, num_classes=3,
                     fidelity="f", recipe={}, latency={}, budgets={}, seed=0,
                     data_id=data_id)  # fmt: skip


def test_a_study_stored_without_an_identity_still_compares_paths() -> None:
    study = optuna.create_study()
    old = _meta("/data/photos", "").to_dict()
    del old["data_id"]  # as written before data had an identity
    study.set_user_attr("nasctl", old)
    check_meta(study, _meta("/data/photos", "folder:3c:48f:abc"))
    with pytest.raises(StudyError, match="another data"):
        check_meta(study, _meta("/mnt/photos", "folder:3c:48f:abc"))
