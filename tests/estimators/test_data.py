from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from estimators import DataError, ImageData, _data, _decode, _splits, download_cifar10, load_data


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own disk cache and an empty memory cache."""
    monkeypatch.setenv("NASCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NASCTL_CIFAR10_URL", raising=False)
    monkeypatch.delenv("NASCTL_CIFAR10_MD5", raising=False)
    _data._MEMORY.clear()


def _image(path: Path, value: int, mode: str = "RGB", size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = np.full((size[1], size[0], channels), value, dtype=np.uint8).squeeze()
    Image.fromarray(arr, mode).save(path)


def _folder(root: Path, classes: dict[str, int], start: int = 0) -> Path:
    for ci, (name, n) in enumerate(classes.items()):
        for i in range(n):
            _image(root / name / f"{start + i:03d}.png", 40 * ci + start + i)
    return root


# --- digits -----------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [8, 32, 48])
def test_digits_shapes_and_stratified_split(resolution: int) -> None:
    data = load_data("digits", resolution)
    assert data.classes == tuple(str(i) for i in range(10))
    assert data.train_x.dtype == torch.uint8
    assert data.train_x.shape[1:] == (3, resolution, resolution)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 1797
    test_counts = torch.bincount(data.test_y, minlength=10)
    val_counts = torch.bincount(data.val_y, minlength=10)
    train_counts = torch.bincount(data.train_y, minlength=10)
    test_frac = test_counts.float() / (test_counts + val_counts + train_counts).float()
    val_frac = val_counts.float() / (val_counts + train_counts).float()
    assert ((test_frac - 0.2).abs() < 0.02).all() and ((val_frac - 0.2).abs() < 0.02).all()
    assert data.test_source == "20% of train, held out"
    assert int(data.train_x.max()) > 200  # 0..16 grey levels scaled to 0..255


def test_digits_read_without_scikit_learn_equal_load_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.datasets import load_digits

    from estimators import _sources

    bunch = load_digits()
    levels, target = _sources._digits_arrays()
    assert np.array_equal(levels, bunch.images) and np.array_equal(target, bunch.target)
    assert target.dtype == np.int64 and levels.shape == (1797, 8, 8)
    # Where scikit-learn's file is not found, load_digits itself reads it.
    monkeypatch.setattr(_sources.importlib.util, "find_spec", lambda name: None)
    fallback = _sources._digits_arrays()
    assert np.array_equal(fallback[0], levels) and np.array_equal(fallback[1], target)


def test_digits_split_is_seeded() -> None:
    a, b, c = (load_data("digits", 8, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val_y, b.val_y) and torch.equal(a.val_x, b.val_x)
    assert not torch.equal(a.val_x, c.val_x)
    # the held-out test split does not move with the seed: no seed's train/val holds it
    assert torch.equal(a.test_x, c.test_x) and torch.equal(a.test_y, c.test_y)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(row.flatten().tolist()) for row in images}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_rows_are_disjoint_deterministic_and_test_is_seed_free(seed: int) -> None:
    labels = torch.arange(60) % 3
    rows = torch.arange(60)
    train, val, test = _splits.split_rows(labels, rows, 3, seed, 0.2, 0.2)
    again = _splits.split_rows(labels, rows, 3, seed, 0.2, 0.2)
    assert all(torch.equal(x, y) for x, y in zip((train, val, test), again, strict=True))
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(60))  # disjoint, all
    assert torch.bincount(labels[test]).tolist() == [4, 4, 4]  # 20% of each class
    assert torch.bincount(labels[val]).tolist() == [3, 3, 3]  # 20% of the rest
    _, _, test0 = _splits.split_rows(labels, rows, 3, 0, 0.2, 0.2)
    assert torch.equal(test, test0)
    given = torch.tensor([100, 101])
    t, v, te = _splits.split_rows(labels, rows, 3, seed, 0.2, 0.2, test=given)
    assert torch.equal(te, given) and len(t) + len(v) == 60


def test_digits_splits_hold_no_common_image() -> None:
    data = load_data("digits", 8)
    train, val, test = _rows(data.train_x), _rows(data.val_x), _rows(data.test_x)
    # digits has a few exact duplicate images; nearly all are unique
    assert len(test & train) < 10 and len(test & val) < 5 and len(val & train) < 10


def test_memory_cache_returns_same_object() -> None:
    assert load_data("digits", 16) is load_data("digits", 16)


# --- ImageFolder ------------------------------------------------------------------------


def test_folder_without_splits_is_split_per_class(tmp_path: Path) -> None:
    root = _folder(tmp_path / "pets", {"cat": 10, "dog": 5})
    (root / "cat" / "notes.txt").write_text("not an image")
    data = load_data(root, 16)
    assert data.name == "pets" and data.classes == ("cat", "dog")
    assert torch.bincount(data.test_y).tolist() == [2, 1]  # 20% of each class
    assert torch.bincount(data.val_y).tolist() == [2, 1]  # 20% of the other 8 and 4
    assert torch.bincount(data.train_y).tolist() == [6, 3]
    assert data.train_x.shape[1:] == (3, 16, 16)


def test_folder_with_train_val_and_mixed_modes(tmp_path: Path) -> None:
    _folder(tmp_path / "d" / "train", {"a": 3, "b": 3})
    _image(tmp_path / "d" / "val" / "a" / "x.png", 200, mode="L")
    _image(tmp_path / "d" / "val" / "b" / "y.png", 100, mode="RGBA")
    data = load_data(tmp_path / "d", 8)
    assert len(data.train_y) == 4 and data.val_y.tolist() == [0, 1]
    assert data.test_y.tolist() == [0, 1] and data.test_source == "20% of train, held out"
    assert data.val_x.shape == (2, 3, 8, 8)
    assert (data.val_x[0] == 200).all()  # grey -> 3 equal channels
    assert (data.val_x[1] == 100).all()  # alpha dropped


def test_test_dir_is_the_test_split_and_val_is_carved_from_train(tmp_path: Path) -> None:
    _folder(tmp_path / "d" / "train", {"a": 2, "b": 2})
    _folder(tmp_path / "d" / "test", {"a": 1, "b": 1}, start=50)
    data = load_data(tmp_path / "d", 8)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (2, 2, 2)
    assert data.test_source == "test/"
    assert _rows(data.test_x) == {bytes([50] * 192), bytes([90] * 192)}  # test/'s pixels


def test_train_val_test_dirs_are_used_as_they_are(tmp_path: Path) -> None:
    _folder(tmp_path / "d" / "train", {"a": 3, "b": 3})
    _folder(tmp_path / "d" / "val", {"a": 1, "b": 1}, start=20)
    _folder(tmp_path / "d" / "test", {"a": 2, "b": 2}, start=50)
    for mode in ("memory", "stream"):
        _data._MEMORY.clear()
        data = load_data(tmp_path / "d", 8, mode=mode)
        assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (6, 2, 4)
        assert data.test_source == "test/" and data.test_y.tolist() == [0, 0, 1, 1]
        test = data.test_x[torch.arange(4)]
        assert _rows(test) == {bytes([v] * 192) for v in (50, 51, 90, 91)}
        assert "4 test" in data.describe()


def test_corrupt_images_are_skipped_and_named(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 4, "b": 4})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    data = load_data(root, 8)
    assert data.skipped == (str(Path("b") / "broken.jpg"),)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 8


def test_large_trees_decode_the_same_with_a_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _folder(tmp_path / "d", {"a": 6, "b": 6})
    serial = load_data(root, 8, disk_cache=False)
    _data._MEMORY.clear()
    monkeypatch.setattr(_decode, "_POOL_THRESHOLD", 1)
    pooled = load_data(root, 8, disk_cache=False)
    assert torch.equal(serial.train_x, pooled.train_x)


def test_disk_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 3, "b": 3})
    first = load_data(root, 8)
    files = list((tmp_path / "cache" / "tensors").glob("folder-r8-*.pt"))
    assert len(files) == 1
    _data._MEMORY.clear()
    again = load_data(root, 8)
    assert torch.equal(first.train_x, again.train_x) and again.classes == first.classes
    _image(root / "a" / "new.png", 7)  # changes the class dir's mtime -> new key
    _data._MEMORY.clear()
    grown = load_data(root, 8)
    assert len(grown.train_y) + len(grown.val_y) + len(grown.test_y) == 7
    assert len(list((tmp_path / "cache" / "tensors").glob("folder-r8-*.pt"))) == 2


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "is not 'digits', 'cifar10' or an existing directory"),
        ("file", "is a file"),
        ("no_classes", "no class subdirectories"),
        ("empty_class", "class 'b' has no images"),
        ("single_class", "single class"),
        ("class_sets_differ", "different classes"),
        ("train_without_val", "neither val/ nor test/"),
        ("all_corrupt", "every image of class 'b' is unreadable"),
    ],
)
def test_bad_data_is_refused_with_a_sentence(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "d"
    if layout == "file":
        root.write_text("x")
    elif layout == "no_classes":
        root.mkdir()
        _image(root / "loose.png", 1)
    elif layout == "empty_class":
        _folder(root, {"a": 2})
        (root / "b").mkdir()
    elif layout == "single_class":
        _folder(root, {"a": 3})
    elif layout == "class_sets_differ":
        _folder(root / "train", {"a": 2, "b": 2})
        _folder(root / "val", {"a": 1, "c": 1})
    elif layout == "train_without_val":
        _folder(root / "train", {"a": 2, "b": 2})
    elif layout == "all_corrupt":
        _folder(root, {"a": 3})
        (root / "b").mkdir()
        (root / "b" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=message):
        load_data(root, 8)


# --- CIFAR-10 batches and download ------------------------------------------------------


def _cifar_dir(root: Path, n_train: int = 20, n_val: int = 10) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_val)):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(n)],
        }
        (root / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def test_cifar_batches_dir(tmp_path: Path) -> None:
    root = _cifar_dir(tmp_path / "cifar-10-batches-py")
    data = load_data(root, 32)
    assert data.classes == tuple(f"c{i}" for i in range(10))
    # test_batch is the test split; val is carved from the data batches (1 of 2 per class)
    assert data.train_x.shape == (10, 3, 32, 32) and sorted(data.val_y.tolist()) == list(range(10))
    assert data.test_y.tolist() == list(range(10)) and data.test_source == "test_batch"
    raw = pickle.loads((root / "data_batch_1").read_bytes())[b"data"]
    test_raw = pickle.loads((root / "test_batch").read_bytes())[b"data"]
    assert torch.equal(data.test_x[0].flatten(), torch.from_numpy(test_raw[0]))
    assert _rows(data.train_x) | _rows(data.val_x) == {bytes(r.tolist()) for r in raw}
    assert load_data(root, 16).train_x.shape[-1] == 16


def test_cifar_dir_without_test_batch(tmp_path: Path) -> None:
    root = _cifar_dir(tmp_path / "c")
    (root / "test_batch").unlink()
    with pytest.raises(DataError, match="no test_batch"):
        load_data(root, 32)


@pytest.fixture
def server(tmp_path: Path):
    """A loopback HTTP server serving a small cifar-10-python.tar.gz; counts requests."""
    src = _cifar_dir(tmp_path / "src" / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    body = buf.getvalue()
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path != "/cifar-10-python.tar.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_port}/cifar-10-python.tar.gz"
    yield url, hashlib.md5(body).hexdigest(), hits
    httpd.shutdown()


def test_cifar10_downloads_once_with_progress(server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, md5, hits = server
    monkeypatch.setenv("NASCTL_CIFAR10_URL", url)
    monkeypatch.setenv("NASCTL_CIFAR10_MD5", md5)
    events = []
    data = load_data("cifar10", 32, on_progress=lambda *e: events.append(e))
    assert isinstance(data, ImageData) and data.name == "cifar10" and len(data.train_y) == 10
    assert events and events[-1][0] == "download" and events[-1][1] == events[-1][2]
    _data._MEMORY.clear()
    load_data("cifar10", 32)
    assert hits == ["/cifar-10-python.tar.gz"]  # the second load used the cache


def test_cifar10_checksum_mismatch(server, tmp_path: Path) -> None:
    url, _md5, _hits = server
    with pytest.raises(DataError, match="MD5"):
        download_cifar10(tmp_path / "dl", url=url, md5="0" * 32)
    assert not (tmp_path / "dl" / "cifar-10-python.tar.gz").exists()


def test_cifar10_unreachable(server, tmp_path: Path) -> None:
    url, md5, _hits = server
    with pytest.raises(DataError, match="cannot download"):
        download_cifar10(tmp_path / "dl", url=url.replace(".tar.gz", ".missing"), md5=md5)
