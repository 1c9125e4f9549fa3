"""A journal whose tail a crash cut short is repaired and loses nothing that was complete.

One real search writes the journal once; every case cuts a copy of it and re-opens it
(cheap), so every byte offset of a record can be tried.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import threading
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

import results._study
from estimators import get_recipe
from results import SearchConfig, run_search
from results._journal import JournalRepairWarning, repair_journal
from results._study import open_storage
from tests.processes import run_nasctl, start_nasctl
from tests.results.conftest import TINY_SPACE

#: The shared journal is written by a real search in another process (seconds).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _config(space: Path, trials: int) -> SearchConfig:
    return SearchConfig(study="t", target="flops", space_path=space, trials=trials, population=2,
                        recipe=get_recipe("search", batch_size=32), images_per_candidate=64,
                        baselines=False, threads=1)  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The space file and the journal a finished 3-trial search left, written by another
    process (as a crashed search would be): this one's trials would look live to it."""
    folder = tmp_path_factory.mktemp("journal")
    space = folder / "tiny.toml"
    space.write_text(TINY_SPACE)
    # _config(space, 3) as the command line says it
    args = ["search", "--target", "flops", "--space", str(space), "--runs", str(folder / "runs"),
            "--study", "t", "--trials", "3", "--population", "2", "--batch-size", "32",
            "--images", "64", "--no-baselines", "--threads", "1"]  # fmt: skip
    done = run_nasctl(args, ROOT, {**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return space, (folder / "runs" / "t.journal").read_bytes()


def _starts(data: bytes) -> list[int]:
    """Where each record (line) begins."""
    return [0] + [i + 1 for i, b in enumerate(data[:-1]) if b == ord("\n")]


def _complete(path: Path) -> dict[int, list[float]]:
    """The COMPLETE trials of study "t", read by Optuna alone (no repair)."""
    study = optuna.load_study(study_name="t", storage=JournalStorage(JournalFileBackend(str(path))))
    return {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}


def _complete_of(data: bytes, where: Path) -> dict[int, list[float]]:
    where.write_bytes(data)
    return _complete(where)


def _last_complete_end(data: bytes) -> int:
    """Where the last record that completes a trial ends."""
    ends = [s for s in _starts(data)[1:] if b'"op_code":6,' in data[:s].rsplit(b"\n", 2)[-2]]
    return ends[-1]


@pytest.mark.parametrize("tail", ["as the search left it", "ending in a trial's completion"])
def test_cut_at_every_byte_of_the_last_record(
    finished: tuple[Path, bytes], tail: str, tmp_path: Path
) -> None:
    _, data = finished
    if tail != "as the search left it":
        data = data[: _last_complete_end(data)]
        assert b'"op_code":6,' in data[_starts(data)[-1] :]
    last = _starts(data)[-1]
    before = _complete_of(data[:last], tmp_path / "before.journal")
    whole = _complete_of(data, tmp_path / "whole.journal")
    path, torn = tmp_path / "t.journal", tmp_path / "t.journal.torn"
    for cut in range(last + 1, len(data)):
        path.write_bytes(data[:cut])
        torn.unlink(missing_ok=True)
        with pytest.warns(JournalRepairWarning, match="repaired") as caught:
            storage = open_storage(str(path), tmp_path, "t")
        assert len(caught) == 1
        study = optuna.load_study(study_name="t", storage=storage)
        got = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
        if cut == len(data) - 1:  # only the newline was cut: the whole record is kept
            assert got == whole and not torn.exists(), cut
            assert "0 bytes moved aside" in str(caught[0].message)
        else:  # the torn record is moved aside, byte for byte
            assert got == before, cut
            assert torn.read_bytes() == data[last:cut] + b"\n", cut
            assert f"{cut - last} bytes moved aside" in str(caught[0].message)
        # Resumed: the next record starts on a line of its own and the journal still reads.
        study.set_user_attr("resumed", cut)
        again = optuna.load_study(
            study_name="t", storage=JournalStorage(JournalFileBackend(str(path)))
        )
        assert again.user_attrs["resumed"] == cut
        assert {t.number: t.values for t in again.get_trials(states=(TrialState.COMPLETE,))} == got


def test_cut_at_random_offsets_then_the_search_resumes(
    finished: tuple[Path, bytes], tmp_path: Path
) -> None:
    """What a kill -9 in the middle of a journal write leaves, anywhere in the search:
    the same search resumes and every trial complete before the cut is still there."""
    space, data = finished
    starts = _starts(data)
    rng = random.Random(18)
    lost = 0
    for k, cut in enumerate(sorted(rng.sample(range(starts[3], len(data)), 5))):
        if cut in starts:
            cut += 1  # inside a record, never on a boundary
        out = tmp_path / f"run{k}"
        out.mkdir()
        record = max(s for s in starts if s < cut)
        before = _complete_of(data[:record], out / "before.journal")
        (out / "t.journal").write_bytes(data[:cut])
        with pytest.warns(JournalRepairWarning):
            resumed = run_search(_config(space, len(before) + 1), out)
        after = {t.number: t.values for t in resumed.get_trials(states=(TrialState.COMPLETE,))}
        lost += sum(after.get(n) != values for n, values in before.items())
        assert len(after) >= len(before) + 1
        assert _complete(out / "t.journal") == after  # Optuna alone reads it back
    assert lost == 0


def test_a_record_glued_onto_a_torn_one_is_kept(
    finished: tuple[Path, bytes], tmp_path: Path
) -> None:
    """What an earlier nasctl left after resuming on a torn journal: the next record glued
    onto the torn one, more records after it (Optuna then refuses the whole journal)."""
    _, data = finished
    starts = _starts(data)
    k = len(starts) - 3
    cut = starts[k] + (starts[k + 1] - starts[k]) // 2
    path = tmp_path / "t.journal"
    path.write_bytes(data[:cut] + data[starts[k + 1] :])
    with pytest.raises(json.JSONDecodeError):  # what Optuna alone makes of it
        JournalStorage(JournalFileBackend(str(path)))
    with pytest.warns(JournalRepairWarning):
        repair = repair_journal(path)
    assert repair is not None and repair.moved_bytes == cut - starts[k]
    assert (repair.torn_records, repair.kept_records) == (1, 1)
    assert path.read_bytes() == data[: starts[k]] + data[starts[k + 1] :]
    assert repair.torn_path.read_bytes() == data[starts[k] : cut] + b"\n"
    _complete(path)  # Optuna reads it again


def test_a_whole_journal_is_left_alone(finished: tuple[Path, bytes], tmp_path: Path) -> None:
    _, data = finished
    path = tmp_path / "t.journal"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        assert repair_journal(path) is None
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.journal"]  # no .torn, no .lock


def test_a_live_writer_is_never_cut(finished: tuple[Path, bytes], tmp_path: Path) -> None:
    """A line without its newline while a writer holds Optuna's lock is a write in
    progress: the repair waits for the lock, finds the line finished, and does nothing."""
    _, data = finished
    last = _starts(data)[-1]
    path = tmp_path / "t.journal"
    path.write_bytes(data[: last + 10])
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    result: list[object] = []
    repairer = threading.Thread(target=lambda: result.append(repair_journal(path)))
    repairer.start()
    time.sleep(0.5)
    assert repairer.is_alive() and path.read_bytes() == data[: last + 10]
    with path.open("ab") as fh:  # the writer finishes its record
        fh.write(data[last + 10 :])
    lock.release()
    repairer.join(10)
    assert result == [None] and path.read_bytes() == data


def _trials_of(journal: Path) -> list[optuna.trial.FrozenTrial]:
    """Study "t" read by Optuna alone, while a search may be writing it."""
    if not journal.exists():
        return []
    try:
        return optuna.load_study(
            study_name="t", storage=JournalStorage(JournalFileBackend(str(journal)))
        ).get_trials()
    except (KeyError, ValueError):  # not created yet, or a line being written
        return []


def test_kill_9_in_a_trial_and_in_a_journal_write_loses_no_finished_trial(
    tmp_path: Path,
) -> None:
    """A real search SIGKILLed while a trial trains, its last journal record then torn at
    a seeded random byte (a kill that also landed in a write); the same search resumes."""
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    out, journal = tmp_path / "runs", tmp_path / "runs" / "t.journal"
    # 512 images per candidate: long enough to be caught training.
    cmd = ["search", "--target", "flops", "--space", str(space),
           "--runs", str(out), "--study", "t", "--trials", "3", "--no-baselines", "--images",
           "512", "--batch-size", "32", "--threads", "1", "--population", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = start_nasctl(cmd, ROOT, env)
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no trial was caught training within 180 s"
        trials = _trials_of(journal)
        done = {t.number: t.values for t in trials if t.state is TrialState.COMPLETE}
        # overhead_s is the last record written before a trial trains.
        training = [
            t for t in trials if t.state is TrialState.RUNNING and "overhead_s" in t.user_attrs
        ]
        if done and training:
            break
        time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    data = journal.read_bytes()
    last = _starts(data)[-1]
    cut = random.Random(18).randrange(last + 1, len(data) - 1)
    journal.write_bytes(data[:cut])

    again = run_nasctl(cmd, ROOT, env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    warned = [ln for ln in again.stderr.splitlines() if ln.startswith("warning: journal")]
    assert len(warned) == 1 and f"{cut - last} bytes moved aside" in warned[0], again.stderr
    after = {t.number: t.values for t in _trials_of(journal) if t.state is TrialState.COMPLETE}
    lost = [n for n, values in done.items() if after.get(n) != values]
    assert lost == [] and len(after) >= 3


def test_a_torn_journal_that_cannot_be_written_is_read_without_its_torn_record(
    finished: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = finished
    last = _starts(data)[-1]
    before = _complete_of(data[:last], tmp_path / "before.journal")
    path = tmp_path / "t.journal"
    path.write_bytes(data[:-7])

    def read_only(path: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(results._study, "repair_journal", read_only)
    with pytest.warns(JournalRepairWarning, match="cannot be repaired here"):
        storage = open_storage(str(path), tmp_path, "t")
    study = optuna.load_study(study_name="t", storage=storage)
    assert {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))} == before
    assert path.read_bytes() == data[:-7]
