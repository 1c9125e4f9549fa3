"""Workers sharing one study: who does a piece of work that only one of them should do.

A worker claims a piece of work (training a baseline, enqueueing a promotion, timing the
baselines for a fastest-baseline budget) by writing its worker id (host:pid) to a study
attribute. A claim held by another live worker is left to it; one left by a dead worker
is taken over. When other workers are live, the claimant waits ``SETTLE_S`` before reading
the claims back: of two written at the same moment, the later one wins and the other
worker sees that it lost.

Where there is no study to write to (``nasctl compare``: several processes retraining one
folder of models), the claim is a file holding the worker id, created exclusively
(``claim_file``), with the same rule for live and dead holders.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

import optuna

from results._study import live_workers, worker_alive, worker_id

#: Seconds between looks at the storage while waiting for another worker.
POLL_S = 1.0
#: Seconds a worker lets other workers' claims land before reading them back.
SETTLE_S = 1.0


def claim(study: optuna.Study, keys: Iterable[str]) -> dict[str, bool]:
    """Claim each study attribute in ``keys`` for this worker, except those another live
    worker holds. Returns the keys it tried, each with whether this worker still holds it
    once the claims have settled (False: another worker's claim written at the same moment
    won)."""
    me = worker_id()
    attrs = study.user_attrs
    live = set(live_workers(study))
    tried = []
    for key in keys:
        holder = attrs.get(key)
        if holder not in (None, me) and holder in live:
            continue
        if holder != me:
            study.set_user_attr(key, me)
        tried.append(key)
    if tried and len(live_workers(study)) > 1:
        time.sleep(SETTLE_S)  # a claim written at the same moment wins or loses now
    attrs = study.user_attrs
    return {key: attrs.get(key) == me for key in tried}


def holder(study: optuna.Study, key: str) -> str | None:
    """The worker id that holds the claim ``key``, or None."""
    value = study.user_attrs.get(key)
    return None if value is None else str(value)


def claim_file(path: Path) -> bool:
    """Claim ``path`` for this worker by creating it (atomic: no settle wait); False while
    another live worker holds it. A claim file left by a dead worker is taken over."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            holder = path.read_text("utf-8").strip()
        except OSError:
            holder = ""
        if not holder:  # being written this instant, or its writer died at once
            try:
                stale = time.time() - path.stat().st_mtime > 60
            except OSError:
                stale = False
            if not stale:
                return False
        elif worker_alive(holder):
            return False
        path.unlink(missing_ok=True)  # its process died: take it over
        return claim_file(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(worker_id())
    return True


def worker_seed(seed: int, worker: str) -> int:
    """The sampler seed of a worker that joins a study other workers are already on:
    derived from --seed and its worker id (host:pid), so no two sample alike."""
    digest = hashlib.sha256(f"{seed}:{worker}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
