"""The streaming path (images in a file, read per batch) against the in-memory one, the
choice between them, the cache's crash safety, and the identity of data by content."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estimators import (
    DataError,
    DiskImages,
    Recipe,
    _data,
    _data_cache,
    _identity,
    fit,
    load_data,
    new_state,
)
from search_space import parse_arch
from tests.processes import run_python

TINY = parse_arch(
    "r16_n3,stem_k3_s2_c8_re,ir_k3_s2_e2_c16_re,ir_k3_s1_e2_c16_se0.25_hs,head_h16_hs_d0.2"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    _data._MEMORY.clear()


def _folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """Small photos of different sizes (so decoding resizes and crops), varied pixels."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = int(rng.integers(10, 30)), int(rng.integers(10, 30))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


def _both(data: str | Path, resolution: int, **kw: object) -> tuple:
    memory = load_data(data, resolution, mode="memory", **kw)  # type: ignore[arg-type]
    _data._MEMORY.clear()
    stream = load_data(data, resolution, mode="stream", **kw)  # type: ignore[arg-type]
    _data._MEMORY.clear()
    return memory, stream


def _cifar_dir(root: Path) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for name, n in (("data_batch_1", 30), ("test_batch", 10)):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(n)],
        }
        (root / name).write_bytes(pickle.dumps(batch))
    return root


@pytest.mark.parametrize("source", ["folder", "split-folder", "digits", "cifar"])
def test_stream_batches_are_byte_identical_to_memory(tmp_path: Path, source: str) -> None:
    if source == "folder":
        data: str | Path = _folder(tmp_path / "d", {"a": 9, "b": 7, "c": 5})
    elif source == "split-folder":
        _folder(tmp_path / "d" / "train", {"a": 6, "b": 6})
        _folder(tmp_path / "d" / "val", {"a": 2, "b": 3}, seed=1)
        data = tmp_path / "d"
    elif source == "cifar":
        data = _cifar_dir(tmp_path / "c")
    else:
        data = "digits"
    memory, stream = _both(data, 16, seed=3)
    if source == "split-folder":
        # val/ is the tree's; test is carved from train/ (1 of 6 per class)
        assert (len(stream.train_y), len(stream.val_y), len(stream.test_y)) == (10, 5, 2)
    assert isinstance(stream.train_x, DiskImages) and stream.streamed
    assert isinstance(memory.train_x, torch.Tensor) and not memory.streamed
    assert stream.train_x.shape == memory.train_x.shape
    assert torch.equal(stream.train_y, memory.train_y)
    assert torch.equal(stream.val_y, memory.val_y)
    assert torch.equal(stream.test_y, memory.test_y) and stream.test_source == memory.test_source
    assert torch.equal(stream.test_x[torch.arange(len(stream.test_y))], memory.test_x)
    assert (stream.mean, stream.std, stream.identity) == (memory.mean, memory.std, memory.identity)
    n = len(memory.train_y)
    gen = torch.Generator().manual_seed(0)
    for idx in (torch.randperm(n, generator=gen)[:8], torch.tensor([1, 1, 0]), torch.arange(n)):
        got = stream.train_x[idx]
        assert got.dtype == torch.uint8 and torch.equal(got, memory.train_x[idx])
    assert torch.equal(stream.val_x[1:4], memory.val_x[1:4])
    assert torch.equal(stream.val_x[::2], memory.val_x[::2])
    assert torch.equal(stream.train_x[2], memory.train_x[2])
    assert torch.equal(stream.train_x[torch.tensor(3)], memory.train_x[torch.tensor(3)])
    assert torch.equal(stream.train_x[-1], memory.train_x[-1])
    assert stream.train_x[torch.tensor([], dtype=torch.int64)].shape == (0, 3, 16, 16)


def test_same_seeded_training_is_identical_on_both_paths(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 40, "b": 40, "c": 40})
    memory, stream = _both(root, 16)
    recipe = Recipe(epochs=1, batch_size=16, bn_images=32, warmup_epochs=0.5)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = fit(new_state(TINY, memory, recipe), memory)
        b = fit(new_state(TINY, stream, recipe), stream)
    finally:
        torch.set_num_threads(previous)
    assert a.step == b.step == len(memory.train_y) // 16
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = [{k: v for k, v in h.items() if k != "train_seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "train_seconds"} for h in b.history]


def test_auto_streams_when_the_decoded_images_exceed_the_budget(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 5, "b": 5})
    size = 10 * 3 * 16 * 16
    assert load_data(root, 16, memory_budget=size - 1).streamed
    assert not load_data(root, 16, memory_budget=size).streamed
    assert not load_data(root, 16).streamed  # the machine's memory: small data stays
    assert load_data("digits", 8, memory_budget=0).streamed
    with pytest.raises(DataError, match="data mode must be one of memory, stream, auto"):
        load_data(root, 16, mode="disk")


def test_available_memory_is_positive() -> None:
    assert _data_cache.available_memory() > 0


_KILL_AFTER = """
import os, signal, sys
from estimators import _data, _decode
real, seen = _decode.decode_one, []
def dying(job):
    seen.append(job)
    if len(seen) > 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(job)
_decode.decode_one = dying
_decode._WRITE_BYTES = 1  # flush every row, so the killed writer leaves a partial file
_data.load_data(sys.argv[1], 16, mode="stream")
"""


@pytest.mark.slow
def test_a_cache_killed_while_decoding_is_rebuilt_not_read(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 8, "b": 8})
    env = {"NASCTL_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    done = run_python(["-c", _KILL_AFTER, str(root)], Path.cwd(), env)
    assert done.returncode == -9
    (left,) = (tmp_path / "cache" / "stream").iterdir()
    names = sorted(p.name for p in left.iterdir())
    assert len(names) == 1 and names[0].endswith(".part") and names[0].startswith("images.")
    assert (left / names[0]).stat().st_size == 6 * 3 * 16 * 16
    stream = load_data(root, 16, mode="stream")
    memory = load_data(root, 16, mode="memory")
    assert torch.equal(stream.train_x[torch.arange(len(stream.train_y))], memory.train_x)
    assert sorted(p.name for p in left.iterdir()) == ["images.u8", "index.npz", "meta.json"]


@pytest.mark.parametrize("damage", ["truncate", "no-meta", "bad-meta", "no-index"])
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    root = _folder(tmp_path / "d", {"a": 6, "b": 6})
    first = load_data(root, 16, mode="stream")
    expected = first.val_x[torch.arange(len(first.val_y))]
    assert isinstance(first.train_x, DiskImages)
    cache = first.train_x.path.parent
    if damage == "truncate":
        with (cache / "images.u8").open("r+b") as fh:
            fh.truncate(5 * 3 * 16 * 16)
    elif damage == "no-meta":
        (cache / "meta.json").unlink()
    elif damage == "bad-meta":
        (cache / "meta.json").write_text("{not json")
    else:
        (cache / "index.npz").unlink()
    _data._MEMORY.clear()
    assert _data_cache.open_stream(cache, 16) is None
    again = load_data(root, 16, mode="stream")
    assert torch.equal(again.val_x[torch.arange(len(again.val_y))], expected)
    assert _data_cache.open_stream(cache, 16) is not None


def test_a_cache_is_reused_without_decoding(tmp_path: Path, monkeypatch) -> None:
    root = _folder(tmp_path / "d", {"a": 4, "b": 4})
    load_data(root, 16, mode="stream")
    _data._MEMORY.clear()
    monkeypatch.setattr(_data, "decode_all", lambda *a: pytest.fail("decoded again"))
    assert load_data(root, 16, mode="stream").streamed


def test_decoding_a_stream_reports_progress(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 4, "b": 3})
    seen: list[tuple] = []
    load_data(root, 16, mode="stream", on_progress=lambda *e: seen.append(e))
    assert seen[-1] == ("decode", 7, 7)


def test_disk_images_survive_pickling(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 4, "b": 4})
    data = load_data(root, 16, mode="stream")
    first = data.train_x[torch.tensor([0, 2])]
    copy = pickle.loads(pickle.dumps(data.train_x))
    assert torch.equal(copy[torch.tensor([0, 2])], first)


# --- identity by content --------------------------------------------------------------


def test_identity_is_the_same_for_a_copy_elsewhere_and_differs_for_other_data(
    tmp_path: Path,
) -> None:
    root = _folder(tmp_path / "here" / "pets", {"cat": 4, "dog": 4})
    copy = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(root, copy)
    mine = load_data(root, 16).identity
    assert mine.startswith("folder:2c:8f:")
    assert load_data(copy, 16).identity == mine
    assert load_data(copy, 24, seed=5).identity == mine  # resolution and split: same files
    Image.new("RGB", (12, 12)).save(copy / "dog" / "new.png")
    _data._MEMORY.clear()
    assert load_data(copy, 16).identity != mine
    classes, files = ("cat", "dog"), sorted(root.rglob("*.png"))
    assert _identity.folder_identity(root, classes, files) == mine
    grown = root / "dog" / "000.png"
    grown.write_bytes(grown.read_bytes() + b"\0")  # same name, another size
    assert _identity.folder_identity(root, classes, files) != mine
    other = _folder(tmp_path / "other", {"cat": 4, "cow": 4})
    assert load_data(other, 16).identity != mine
    assert load_data("digits", 8).identity == "digits"
