"""Decoding image files to uint8 at a resolution, in parallel, into memory or a file."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from estimators._download import ProgressFn
from estimators._images import DiskImages, Images

__all__ = ["FileSink", "decode_all", "decode_one", "resize_uint8"]

_POOL_THRESHOLD = 2000  # fewer files than this decode faster without worker start-up
_WRITE_BYTES = 64 << 20  # the streaming writer holds at most this many decoded bytes


def resize_uint8(images: torch.Tensor, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of uint8 NCHW, in chunks to bound
    the float32 working memory."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    parts = []
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float()
        x = F.interpolate(
            x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
        )
        parts.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(parts)


def decode_all(
    paths: list[Path], resolution: int, on_progress: ProgressFn | None, stream_dir: Path | None
) -> tuple[Images, np.ndarray]:
    """Decode every file to uint8 [3, R, R]; returns the images and a readable-mask.

    In memory, one array; with ``stream_dir``, rows appended to a file there in chunks
    of ``_WRITE_BYTES`` (unreadable files leave a zero row, so row i is file i).
    PIL decoding holds the GIL, so large trees use a pool of two processes (this machine
    has two cores); small ones are faster in-process.
    """
    ok = np.zeros(len(paths), dtype=bool)
    sink = FileSink(stream_dir, resolution) if stream_dir else _ArraySink(len(paths), resolution)
    jobs = [(str(p), resolution) for p in paths]
    results: Iterable[np.ndarray | None]
    with sink:
        if len(paths) >= _POOL_THRESHOLD:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(2) as pool:
                results = pool.imap(decode_one, jobs, chunksize=512)
                _collect(results, sink, ok, on_progress)
        else:
            _collect(map(decode_one, jobs), sink, ok, on_progress)
    return sink.images(), ok


class _ArraySink:
    def __init__(self, count: int, resolution: int) -> None:
        self.out = np.zeros((count, 3, resolution, resolution), dtype=np.uint8)

    def __enter__(self) -> _ArraySink:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def put(self, i: int, image: np.ndarray | None) -> None:
        if image is not None:
            self.out[i] = image

    def images(self) -> Images:
        return torch.from_numpy(self.out)


class FileSink:
    """Appends rows to ``<dir>/images.<pid>.part`` through a buffer of ``_WRITE_BYTES``;
    renamed to ``images.u8`` only when every row is written (see ``seal_stream``)."""

    def __init__(self, directory: Path, resolution: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.resolution = resolution
        self.part = directory / f"images.{os.getpid()}.part"
        self.final = directory / "images.u8"
        rows = max(1, _WRITE_BYTES // (3 * resolution * resolution))
        self.buffer = np.zeros((rows, 3, resolution, resolution), dtype=np.uint8)
        self.filled = 0
        self.fh: Any = None

    def __enter__(self) -> FileSink:
        self.fh = self.part.open("wb", buffering=0)  # forked decoders must not flush it
        return self

    def put(self, i: int, image: np.ndarray | None) -> None:
        self.buffer[self.filled] = 0 if image is None else image
        self.filled += 1
        if self.filled == len(self.buffer):
            self._flush()

    def _flush(self) -> None:
        self.fh.write(self.buffer[: self.filled].data)
        self.filled = 0

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self._flush()
                self.fh.flush()
                os.fsync(self.fh.fileno())
        finally:
            self.fh.close()
        if exc_type is None:
            self.part.replace(self.final)
        else:
            self.part.unlink(missing_ok=True)

    def images(self) -> Images:
        count = self.final.stat().st_size // (3 * self.resolution**2)
        return DiskImages(self.final, self.resolution, np.arange(count))


def _collect(
    results: Iterable[np.ndarray | None],
    sink: _ArraySink | FileSink,
    ok: np.ndarray,
    on_progress: ProgressFn | None,
) -> None:
    total = len(ok)
    for i, image in enumerate(results):
        sink.put(i, image)
        ok[i] = image is not None
        if on_progress and (i % 1000 == 999 or i == total - 1):
            on_progress("decode", i + 1, total)


def decode_one(job: tuple[str, int]) -> np.ndarray | None:
    """One file -> RGB (grey, palette and RGBA converted), shorter side resized to the
    resolution, centre-cropped; None when unreadable."""
    path, resolution = job
    try:
        with Image.open(path) as img:
            img.draft("RGB", (resolution, resolution))  # JPEG: decode at reduced scale
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    w, h = rgb.size
    if (w, h) != (resolution, resolution):
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        rgb = rgb.crop((left, top, left + resolution, top + resolution))
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
