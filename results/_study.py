"""Where a search keeps what it found: an Optuna study in a storage, and its trials as a
table.

The default storage is Optuna's journal file ``OUT/STUDY.journal`` (several processes on
one machine may share it; its file lock keeps it consistent); ``--storage`` takes any
Optuna storage URL (PostgreSQL for workers on many machines). A study records how it was
made (target, space, data, recipe) so that a re-run resumes it and a mismatched re-run
is refused, and every trial records enough (arch string, spec JSON, costs, latency,
accuracy, fidelity) to reproduce and export it from the storage alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from results._journal import JournalRepairWarning, repair_journal
from search_space import NasctlError

__all__ = [
    "SUMMARY_COLUMNS",
    "TRIAL_COLUMNS",
    "StudyError",
    "StudyMeta",
    "check_meta",
    "end_worker",
    "fail_dead_local_trials",
    "list_studies",
    "live_workers",
    "load_study",
    "open_existing",
    "open_storage",
    "register_worker",
    "trials_frame",
    "worker_alive",
    "worker_id",
]


class StudyError(NasctlError):
    """A study or storage cannot be opened or does not match the request."""


#: Study attributes that must match when a study is resumed.
_IDENTITY = ("target", "space_sha", "data", "num_classes", "fidelity")


@dataclass(frozen=True)
class StudyMeta:
    """How a study was made; stored in the study's user attributes under ``nasctl``."""

    target: str
    space_sha: str
    space_text: str
    data: str
    num_classes: int
    fidelity: str
    recipe: dict[str, Any]
    latency: dict[str, Any]
    budgets: dict[str, float | None]
    seed: int
    #: The data's content identity (``ImageData.identity``: classes, relative file list
    #: and sizes): workers may give ``--data`` at different paths on different machines.
    data_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @staticmethod
    def space_digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_storage(storage: str | None, out: Path, study: str) -> BaseStorage:
    """The storage a study lives in: ``storage`` (an Optuna URL or a .journal path) or,
    by default, ``out/<study>.journal``."""
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
        return _journal(out / f"{study}.journal")
    if storage.endswith(".journal") and "://" not in storage:
        return _journal(Path(storage))
    if "://" not in storage:
        raise StudyError(
            f"storage must be an Optuna storage URL (sqlite:///file.db, "
            f"postgresql://user@host/db) or a .journal file, got {storage!r}"
        )
    # Workers that start together on an empty database race to create Optuna's tables
    # and stamp its schema version; the loser's error is transient, so try again (the
    # tables are there then).
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # "heartbeat_interval is experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    _driver(storage),
                    heartbeat_interval=10,
                    grace_period=30,
                    failed_trial_callback=None,
                )
        except Exception as exc:  # sqlalchemy raises many types: one line for the user
            if _schema_race(exc) and attempt < _OPEN_ATTEMPTS - 1:
                time.sleep(0.5 + attempt + _jitter())
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StudyError(f"cannot open storage {_redact(storage)!r}: {reason}") from None
    raise AssertionError("unreachable")


_OPEN_ATTEMPTS = 5


def _jitter() -> float:
    """A fraction of a second that differs between processes, so workers that collided
    once do not retry in step; taken from the process id, not from a random generator."""
    return (os.getpid() * 7919 % 1000) / 1000


def _schema_race(exc: Exception) -> bool:
    """Whether opening failed only because another worker was creating the same schema:
    a duplicate key (IntegrityError) or a table or type created under it
    ("relation "alembic_version" already exists", a ProgrammingError on PostgreSQL)."""
    import sqlalchemy.exc  # optuna's own dependency; only RDB storages get here

    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    return isinstance(exc, sqlalchemy.exc.ProgrammingError) and "already exists" in str(exc)


def _driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 picks psycopg
    (3) for a bare scheme; nasctl's ``postgres`` extra installs psycopg2."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def _journal(path: Path) -> BaseStorage:
    if path.is_dir():
        raise StudyError(f"storage file {str(path)!r} is a directory, not an Optuna journal file")
    if path.exists() and path.stat().st_size:
        with path.open("rb") as fh:
            head = fh.read(64).lstrip()
        if not head.startswith(b"{"):
            raise StudyError(f"storage file {str(path)!r} is not an Optuna journal file")
        try:  # a tail torn by a crash: repaired (and warned about) before Optuna reads it
            repair_journal(path)
        except OSError as exc:  # a read-only folder: Optuna's reader skips a torn last line
            warnings.warn(
                JournalRepairWarning(
                    f"journal {str(path)!r} has a torn record that cannot be repaired here "
                    f"({exc.strerror or exc}); it is read without it, and a search cannot "
                    "resume it until it is repaired where it can be written"
                ),
                stacklevel=2,
            )
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:
        raise StudyError(f"cannot open journal file {str(path)!r}: {exc}") from None


def _redact(url: str) -> str:
    """Hide a password in a storage URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def load_study(name: str, storage: BaseStorage) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = list_studies(storage)
        known = f" (studies here: {', '.join(names)})" if names else " (the storage is empty)"
        raise StudyError(f"no study named {name!r} in the storage{known}") from None
    except Exception as exc:
        raise StudyError(f"cannot read study {name!r}: {exc}") from None


def list_studies(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def check_meta(study: optuna.Study, meta: StudyMeta) -> None:
    """Refuse to resume a study made for another target, space, data or fidelity."""
    stored = study.user_attrs.get("nasctl")
    if stored is None:
        if study.trials:
            raise StudyError(
                f"study {study.study_name!r} was not created by nasctl search; use a new --study"
            )
        study.set_user_attr("nasctl", meta.to_dict())
        return
    for key in _IDENTITY:
        if key == "data" and stored.get("data_id") and meta.data_id:
            key = "data_id"  # by content: the same files at another path are the same data
        if stored.get(key) != getattr(meta, key):
            what = {"space_sha": "space file", "data_id": "data (by content)"}.get(key, key)
            raise StudyError(
                f"study {study.study_name!r} was created with another {what} "
                f"({stored.get(key)!r}, now {getattr(meta, key)!r}); use a new --study or "
                "the original options"
            )


# --- workers ------------------------------------------------------------------------
#
# Every `nasctl search` process registers itself in the study's user attributes as
# ``worker:<host>:<pid>`` = {"started": unix time, "seed": its sampler seed}, and adds
# "ended" when it returns. A worker is live while it has no "ended" and, on this host,
# its process exists (a killed worker never writes "ended").


def register_worker(study: optuna.Study, info: dict[str, Any]) -> None:
    study.set_user_attr(f"worker:{worker_id()}", {"started": time.time(), **info})


def end_worker(study: optuna.Study) -> None:
    key = f"worker:{worker_id()}"
    study.set_user_attr(key, {**study.user_attrs.get(key, {}), "ended": time.time()})


def worker_alive(worker: str) -> bool:
    """False only for a worker of this host whose process is gone."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return _alive(int(pid))


def live_workers(study: optuna.Study, local_only: bool = False) -> list[str]:
    """The registered workers that have not ended and are not known to be dead."""
    host = socket.gethostname()
    found = []
    for key, value in study.user_attrs.items():
        if not key.startswith("worker:") or not isinstance(value, dict) or "ended" in value:
            continue
        worker = key.removeprefix("worker:")
        if local_only and worker.rpartition(":")[0] != host:
            continue
        if worker_alive(worker):
            found.append(worker)
    return sorted(found)


def fail_dead_local_trials(study: optuna.Study, storage: BaseStorage) -> list[FrozenTrial]:
    """Mark FAIL the RUNNING trials whose worker process on this host is gone (killed or
    crashed), and return them so their candidates can be retried. (RDB storages also
    fail trials whose heartbeat stopped, for workers on other machines.)"""
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    dead = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        w_host, _, pid = worker.rpartition(":")
        if w_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", "worker died")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except RuntimeError:  # another worker finished or failed it first
            continue
        dead.append(trial)
    return dead


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the trials as a table ------------------------------------------------------------

#: What ``trials_frame`` holds, in order (a study without trials gives these columns too).
TRIAL_COLUMNS = (
    "number",
    "state",
    "feasible",
    "accuracy",
    "latency_ms",
    "macs",
    "params",
    "train_seconds",
    "score_seconds",
    "fidelity",
    "rung",
    "rung_accuracy",
    "promoted_from",
    "reused_from",
    "arch",
    "latency_p10_ms",
    "latency_p90_ms",
    "violations",
    "fail_reason",
    "worker",
    "device",
    "duration_s",
)
#: The columns a person reads first (``nasctl results show``): those up to the arch string,
#: less the supernet's scoring time and the share of the data a candidate trained on.
SUMMARY_COLUMNS = tuple(
    c
    for c in TRIAL_COLUMNS[: TRIAL_COLUMNS.index("arch") + 1]
    if c not in {"score_seconds", "fidelity"}
)


def trials_frame(study: optuna.Study, states: Sequence[TrialState] | None = None) -> pd.DataFrame:
    """One row per trial with what nasctl recorded (JSON-able values only)."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=states):
        attrs = t.user_attrs
        row = {
            "number": t.number,
            "state": t.state.name,
            "feasible": attrs.get("feasible"),
            "accuracy": attrs.get("accuracy"),
            "latency_ms": attrs.get("latency_ms"),
            "macs": attrs.get("macs"),
            "params": attrs.get("params"),
            "train_seconds": attrs.get("train_seconds"),
            "score_seconds": attrs.get("score_seconds"),  # supernet: no training
            "fidelity": attrs.get("fidelity"),
            # Halving: the rung, the trial promoted from, the accuracy at every rung so far.
            "rung": attrs.get("rung"),
            "promoted_from": attrs.get("promoted_from"),
            "rung_accuracy": (
                json.dumps(attrs["rung_accuracy"]) if attrs.get("rung_accuracy") else None
            ),
            "reused_from": attrs.get("reused_from"),
            "arch": attrs.get("arch"),
            "latency_p10_ms": attrs.get("latency_p10_ms"),
            "latency_p90_ms": attrs.get("latency_p90_ms"),
            "violations": json.dumps(attrs.get("violations")) if attrs.get("violations") else None,
            "fail_reason": attrs.get("fail_reason"),
            "worker": attrs.get("worker"),
            "device": attrs.get("device"),  # where and at what precision it trained
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def open_existing(name: str, out: Path, storage: str | None) -> optuna.Study:
    """A study for `nasctl results` (finished or running)."""
    if storage is None and not (out / f"{name}.journal").exists():
        raise StudyError(
            f"no study {name!r} under {str(out)!r} (looked for {name}.journal); pass --runs "
            "or --storage"
        )
    # Reading creates nothing: a journal or SQLite file that is not there holds no study.
    local = storage.removeprefix("sqlite:///") if storage else ""
    sqlite_file = bool(storage) and storage != local and local != ":memory:"
    if (
        (sqlite_file or local.endswith(".journal"))
        and "://" not in local
        and not Path(local).exists()
    ):
        raise StudyError(f"no study {name!r}: storage file {local!r} does not exist")
    return load_study(name, open_storage(storage, out, name))
