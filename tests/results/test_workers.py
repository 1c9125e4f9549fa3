"""Several workers, killed workers, Ctrl-C, diverging training and broken storage.

The worker tests run real `nasctl search` processes on the tiny space (forked from a
server that has done the imports: tests/processes.py). The PostgreSQL
test needs a server: `.ci/run` starts one and exports NASCTL_TEST_POSTGRES (a URL).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

import results._baselines as baselines_module
import results._claims as claims
import results._search as search_module
from estimators import TrainingDiverged, get_recipe
from nasctl.cli import app
from results import SearchConfig, StudyError, run_search
from results._claims import cores, worker_seed
from results._halving import due_promotions
from results._search import _Runner
from results._study import _driver, open_storage, worker_id
from results._trial import objective
from search_space import format_arch
from tests.processes import PythonProcess, run_nasctl, start_nasctl

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--images", "64", "--batch-size", "32", "--threads", "1", "--population", "2"]


def _command(space: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return ["search", "--target", "flops", "--space",
            str(space), "--runs", str(out), "--study", "w", "--trials", str(trials),
            "--no-baselines", *FAST, *extra]  # fmt: skip


def _start(cmd: list[str]) -> PythonProcess:
    return start_nasctl(cmd, ROOT, {**os.environ, "OMP_NUM_THREADS": "1"})


def _trials(journal: Path) -> list[FrozenTrial]:
    if not journal.exists():
        return []
    storage = JournalStorage(JournalFileBackend(str(journal)))
    try:
        return optuna.load_study(study_name="w", storage=storage).get_trials()
    except KeyError:
        return []


def _wait_until_training(proc: PythonProcess, journal: Path, done: int) -> FrozenTrial:
    """The RUNNING trial that has been priced (so is training), once `done` trials finished."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        trials = _trials(journal)
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        # overhead_s is the last write before training: killing a worker in the middle
        # of a journal write would leave its lock for Optuna's 30 s grace period.
        running = [
            t for t in trials if t.state is TrialState.RUNNING and "overhead_s" in t.user_attrs
        ]
        if len(complete) >= done and running:
            time.sleep(0.1)
            return running[0]
        time.sleep(0.05)
    raise AssertionError("no trial started training within 120 s")


def _check_accounted(trials: list[FrozenTrial], wanted: int) -> None:
    """Every trial finished (none left running), none trained twice."""
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials), [
        (t.number, t.state) for t in trials
    ]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert len(complete) >= wanted
    trained = [t.user_attrs["arch"] for t in complete if "reused_from" not in t.user_attrs]
    assert len(trained) == len(set(trained)), "an architecture was trained twice"
    for t in complete:
        assert t.values[0] == t.user_attrs["accuracy"] and t.user_attrs["spec"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_or_interrupted_worker_resumes(sig: int, tiny_space: Path, tmp_path: Path) -> None:
    # 512 images per candidate: long enough to be caught training.
    cmd = _command(tiny_space, tmp_path, 3, "--images", "512")
    journal = tmp_path / "w.journal"
    proc = _start(cmd)
    victim = _wait_until_training(proc, journal, done=1)
    finished = {t.number: t.values for t in _trials(journal) if t.state is TrialState.COMPLETE}
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: exit 130 after writing the outputs of what is finished
        assert proc.returncode == 130, err
        assert "re-run the same command to resume" in err
        assert "Traceback" not in err, err  # Optuna's record of the cut trial is not shown
        assert (tmp_path / "w" / "trials.csv").exists()

    again = run_nasctl(cmd, ROOT, timeout=300)
    assert again.returncode == 0, again.stderr
    trials = _trials(journal)
    reason = "worker died" if sig == signal.SIGKILL else "interrupted"
    # The victim was training when polled; on a fast machine it may finish before the
    # signal lands, and the next trial is the one cut short: exactly one is.
    cut = [t for t in trials if t.user_attrs.get("fail_reason") == reason]
    assert len(cut) == 1 and cut[0].number >= victim.number, [(t.number, t.state) for t in trials]
    killed = cut[0]
    assert killed.state is TrialState.FAIL
    retried = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retried) == 1 and retried[0].state is TrialState.COMPLETE
    assert retried[0].params == killed.params
    assert {n: trials[n].values for n in finished} == finished
    _check_accounted(trials, 3)


def _run_two(cmd: list[str], load: Callable[[], optuna.Study]) -> optuna.Study:
    """Two workers on one study, the second started once the first has registered: a
    forked worker starts in milliseconds, and one that opened PostgreSQL's fresh schema
    first could finish every trial while the other waited out the schema race."""
    first = _start(cmd)
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(KeyError, ValueError):  # not created yet, a line being written
            if any(k.startswith("worker:") for k in load().user_attrs):
                break
        time.sleep(0.02)
    procs = [first, _start(cmd)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    study = load()
    workers = {k: v for k, v in study.user_attrs.items() if k.startswith("worker:")}
    assert len(workers) == 2 and all("ended" in v for v in workers.values())
    # They ran at the same time (512 images a candidate: the first is still training when
    # the second opens the study), and of two workers live at the same time at most one
    # keeps --seed (register, then look).
    a, b = workers.values()
    assert a["started"] < b["ended"] and b["started"] < a["ended"], (a, b)
    assert a["seed"] != b["seed"], "two workers at once shared a seed"
    assert {t.user_attrs["worker"] for t in study.trials} <= {k[7:] for k in workers}
    return study


def _two_workers(space: Path, out: Path, storage: list[str]) -> list[FrozenTrial]:
    cmd = _command(space, out, 4, "--sampler", "random", "--images", "512", *storage)
    url = storage[1] if storage else None
    storage = open_storage(url, out, "w")
    return _run_two(cmd, lambda: optuna.load_study(study_name="w", storage=storage)).get_trials()


@pytest.mark.slow
def test_two_workers_share_a_journal(tiny_space: Path, tmp_path: Path) -> None:
    _check_accounted(_two_workers(tiny_space, tmp_path, []), 4)


@pytest.mark.slow
def test_two_halving_workers_share_a_journal(tiny_space: Path, tmp_path: Path) -> None:
    # Rungs of 32 and 64 images: promotions are decided and claimed by both workers.
    cmd = _command(tiny_space, tmp_path, 8, "--sampler", "random", "--accuracy", "halving",
                   "--eta", "2", "--min-fidelity", "0.5")  # fmt: skip
    procs = [_start(cmd) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    trials = _trials(tmp_path / "w.journal")
    assert all(t.state is TrialState.COMPLETE for t in trials), [
        (t.number, t.state) for t in trials
    ]
    trained = [(t.user_attrs["arch"], t.user_attrs["fidelity"]) for t in trials
               if "reused_from" not in t.user_attrs]  # fmt: skip
    assert len(trained) == len(set(trained)), "an architecture was trained twice at one fidelity"
    promoted = [t for t in trials if t.user_attrs.get("rung") == 1]
    assert promoted and all(trials[t.user_attrs["promoted_from"]].params == t.params
                            for t in promoted)  # fmt: skip
    # Every promotion the finished rung calls for was made, once.
    assert due_promotions(trials, rungs=2, eta=2) == []
    assert len({t.user_attrs["arch"] for t in promoted}) == len(
        [t for t in promoted if "reused_from" not in t.user_attrs]
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("NASCTL_TEST_POSTGRES"),
    reason="needs a PostgreSQL server: set NASCTL_TEST_POSTGRES=postgresql://... (.ci/run does)",
)
def test_two_workers_share_postgresql(tiny_space: Path, tmp_path: Path) -> None:
    url = os.environ["NASCTL_TEST_POSTGRES"]
    # A fresh study name per run: the database outlives the test.
    name = f"w{os.getpid()}{int(time.time() * 1000) % 10**8}"
    cmd = _command(tiny_space, tmp_path, 4, "--sampler", "random", "--images", "512",
                   "--storage", url)  # fmt: skip
    cmd[cmd.index("--study") + 1] = name
    storage = open_storage(url, tmp_path, name)
    study = _run_two(cmd, lambda: optuna.load_study(study_name=name, storage=storage))
    _check_accounted(study.get_trials(), 4)
    assert (tmp_path / name / "trials.csv").exists()


# Each process sleeps until the same instant, then opens the storage.
_OPEN_AT = """
import sys, time
from pathlib import Path
from typing import Any
from results._study import StudyError, open_storage
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    open_storage(sys.argv[1], Path("."), "s")
except StudyError as exc:
    sys.exit(str(exc))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("NASCTL_TEST_POSTGRES"),
    reason="needs a PostgreSQL server: set NASCTL_TEST_POSTGRES=postgresql://... (.ci/run does)",
)
def test_workers_opening_an_empty_postgresql_database_together_all_get_in() -> None:
    # Optuna creates its tables and stamps their version on first open; workers that
    # start at the same instant race to do it. Every one of them must get in.
    import sqlalchemy

    url = os.environ["NASCTL_TEST_POSTGRES"]
    server, _ = url.rsplit("/", 1)
    admin = sqlalchemy.create_engine(_driver(f"{server}/postgres"), isolation_level="AUTOCOMMIT")
    failures: list[str] = []
    for round_ in range(3):  # a fresh, empty database each round
        db = f"race{os.getpid()}_{round_}"
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {db}"))
        at = time.time() + 4.0  # past every process's imports
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, f"{server}/{db}", str(at)],
                                  cwd=ROOT, env=env, text=True, stderr=subprocess.PIPE)
                 for _ in range(4)]  # fmt: skip
        errors = [p.communicate(timeout=120)[1].strip() for p in procs]
        failures += [e for p, e in zip(procs, errors, strict=True) if p.returncode != 0]
    admin.dispose()
    assert not failures, failures


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("IntegrityError", 'duplicate key value violates unique constraint "pg_type_typname"'),
        ("ProgrammingError", 'relation "alembic_version" already exists'),
        ("ProgrammingError", "permission denied for schema public"),
        ("OperationalError", "could not connect to server"),
    ],
)
def test_only_a_schema_race_is_retried_when_opening_storage(
    error: str, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The race above is timing-dependent; this pins which errors count as "another worker
    # is creating the schema" (tried again) and which reach the user at once.
    import sqlalchemy.exc

    from results import _study

    race = error == "IntegrityError" or "already exists" in message
    calls: list[str] = []

    def storage(url: str, **_: object) -> str:
        calls.append(url)
        if len(calls) == 1:
            raise getattr(sqlalchemy.exc, error)("CREATE TABLE ...", {}, Exception(message))
        return "opened"

    monkeypatch.setattr(_study, "RDBStorage", storage)
    monkeypatch.setattr(_study.time, "sleep", lambda _: None)
    url = "postgresql://u@127.0.0.1:1/db"
    if race:
        assert open_storage(url, tmp_path, "s") == "opened"
        assert len(calls) == 2
    else:
        with pytest.raises(StudyError, match=message.split()[0]):
            open_storage(url, tmp_path, "s")
        assert len(calls) == 1


# --- in-process: divergence, broken storage ---------------------------------------------

RECIPE = get_recipe("search", batch_size=32)


def _config(space: Path, **kw: object) -> SearchConfig:
    defaults: dict[str, object] = dict(study="t", target="flops", space_path=space, trials=2,
                    population=2, recipe=RECIPE, images_per_candidate=64, baselines=False,
                    threads=1, sampler="random")  # fmt: skip
    defaults.update(kw)
    return SearchConfig(**defaults)  # type: ignore[arg-type]


def test_diverging_training_fails_the_trial_and_the_search_goes_on(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = search_module.train_and_evaluate
    calls = []

    def first_diverges(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise TrainingDiverged("loss is nan at epoch 1, batch 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(search_module, "train_and_evaluate", first_diverges)
    study = run_search(_config(tiny_space), tmp_path)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith("loss is nan")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_full_disk_is_one_line_and_the_study_is_untouched(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["search", "--target", "flops", "--space", str(tiny_space), "--runs", str(tmp_path),
            "--study", "w", "--trials", "1", "--no-baselines", *FAST]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, args).exit_code == 0
    journal = tmp_path / "w.journal"
    before = journal.read_bytes()
    csv = (tmp_path / "w" / "trials.csv").read_bytes()

    def full(*_args: object, **_kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(JournalFileBackend, "append_logs", full)
    result = runner.invoke(app, [*args[:-len(FAST) - 3], "--trials", "2", "--no-baselines",
                                 *FAST])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.stderr and "w.journal" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert journal.read_bytes() == before
    assert (tmp_path / "w" / "trials.csv").read_bytes() == csv
    monkeypatch.undo()

    # Outputs that cannot be written: one line, the study is saved.
    monkeypatch.setattr("pandas.DataFrame.to_csv", full)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "cannot write the outputs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01 not a journal", b'{"hello": "world"}\n', b"SQLite format 3\x00", "corrupt tail"],
)
def test_corrupt_or_foreign_storage_is_refused_untouched(
    garbage: bytes | str, tiny_space: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "t.journal"
    if garbage == "corrupt tail":  # a real journal with a broken line in the middle
        run_search(_config(tiny_space, trials=1), tmp_path)
        garbage = journal.read_bytes() + b"{broken\n" + b'{"op_code": 0}\n'
    assert isinstance(garbage, bytes)
    journal.write_bytes(garbage)
    with pytest.raises(StudyError, match="journal file"):
        run_search(_config(tiny_space), tmp_path)
    assert journal.read_bytes() == garbage


def test_worker_seeds_differ_and_are_stable() -> None:
    seeds = {worker_seed(0, f"host:{pid}") for pid in range(1000)}
    assert len(seeds) == 1000 and worker_seed(0, "h:1") == worker_seed(0, "h:1")
    assert worker_seed(0, "h:1") != worker_seed(1, "h:1")


def test_a_worker_waits_for_another_training_the_same_arch(
    two_arch_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _Runner(_config(two_arch_space), tmp_path, None, lambda e: None)
    monkeypatch.setattr(claims, "POLL_S", 0.1)
    study = runner.open()
    # "Another worker" (alive: this process) is training an architecture right now.
    twin = study.ask()
    arch = format_arch(runner.space.sample(twin, runner.num_classes))
    for key, value in {"worker": worker_id(), "arch": arch, "fidelity": runner.fidelity}.items():
        twin.set_user_attr(key, value)
    study.enqueue_trial(twin.params)
    mine = study.ask()

    def finish() -> None:
        time.sleep(0.5)
        twin.set_user_attr("accuracy", 0.75)
        twin.set_user_attr("feasible", True)
        study.tell(twin, [0.75, 1.0])

    thread = threading.Thread(target=finish)
    thread.start()
    accuracy, _ = objective(runner, mine)
    thread.join()
    assert accuracy == 0.75 and mine.user_attrs["reused_from"] == twin.number
    assert "train_seconds" not in study.trials[mine.number].user_attrs


def test_a_twin_whose_worker_stopped_beating_is_failed_and_not_waited_for(
    two_arch_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database storage: the twin's worker is on another host (alive as far as this
    # host can tell), but its heartbeat stopped, so Optuna's stale-trial check fails it.
    storage = f"sqlite:///{tmp_path / 's.db'}"
    waits: list[str] = []

    def on_event(event: Any) -> None:  # a twin never failed: stop rather than wait forever
        if "waiting for trial" in event.message:
            waits.append(event.message)
            assert len(waits) < 30, "the twin was never failed"

    runner = _Runner(_config(two_arch_space), tmp_path, storage, on_event)
    assert isinstance(runner.storage, optuna.storages.RDBStorage)
    monkeypatch.setattr(runner.storage, "grace_period", 0)
    monkeypatch.setattr(claims, "POLL_S", 0.1)
    study = runner.open()
    twin = study.ask()
    arch = format_arch(runner.space.sample(twin, runner.num_classes))
    for key, value in {"worker": "elsewhere:1", "arch": arch, "fidelity": runner.fidelity}.items():
        twin.set_user_attr(key, value)
    study_id = runner.storage.get_study_id_from_name(study.study_name)
    runner.storage.record_heartbeat(
        runner.storage.get_trial_id_from_study_id_trial_number(study_id, twin.number)
    )
    study.enqueue_trial(twin.params)
    mine = study.ask()
    objective(runner, mine)
    assert study.trials[twin.number].state is TrialState.FAIL
    assert "train_seconds" in study.trials[mine.number].user_attrs


def test_training_threads_are_split_between_live_local_workers(
    tiny_space: Path, tmp_path: Path
) -> None:
    runner = _Runner(_config(tiny_space, threads=None), tmp_path, None, lambda e: None)
    study = runner.open()
    assert runner.threads(study) == cores()
    host = worker_id().rpartition(":")[0]
    study.set_user_attr(f"worker:{host}:{os.getppid()}", {"started": 0.0, "seed": 1})
    assert runner.threads(study) == max(1, cores() // 2)
    study.set_user_attr(f"worker:{host}:{os.getppid()}", {"started": 0.0, "ended": 1.0})
    assert runner.threads(study) == cores()


def test_a_baseline_claimed_by_a_live_worker_is_left_to_it(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _Runner(_config(tiny_space), tmp_path, None, lambda e: None)
    monkeypatch.setattr(claims, "SETTLE_S", 0.0)
    study = runner.open()
    other = f"{worker_id().rpartition(':')[0]}:{os.getppid()}"  # a live process
    study.set_user_attr(f"worker:{other}", {"started": 0.0, "seed": 1})
    study.set_user_attr("baseline-claim:mobilenet_v1", other)
    study.set_user_attr("baseline-claim:mobilenet_v2", f"{other}0")  # a worker that is gone
    trained: list[str] = []
    record = lambda run, study, spec, label, *_: trained.append(label) or {}  # noqa: E731
    monkeypatch.setattr(baselines_module, "baseline_record", record)
    monkeypatch.setattr(runner.pricing, "time_baselines", lambda names: {})
    baselines_module.evaluate_baselines(runner, study)
    assert sorted(trained) == ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
    assert study.user_attrs["baseline-claim:mobilenet_v3_small"] == worker_id()
    trained.clear()
    baselines_module.evaluate_baselines(runner, study)  # the rest are recorded: none trained
    assert trained == []


def test_a_promotion_claimed_by_a_live_worker_is_left_to_it(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tiny_space, trials=4, accuracy="halving", eta=2, min_fidelity=0.5)
    run_search(config, tmp_path)
    runner = _Runner(config, tmp_path, None, lambda e: None)
    monkeypatch.setattr(claims, "SETTLE_S", 0.0)
    study = runner.open()
    # A study holding only the rung-0 results of a finished one: its promotions are due.
    copy = optuna.create_study(directions=["maximize", "minimize"])
    for t in study.get_trials():
        if t.user_attrs.get("rung") == 0:
            copy.add_trial(t)
    copy.set_user_attr("worker:" + worker_id(), {"started": 0.0, "seed": 0})
    other = f"{worker_id().rpartition(':')[0]}:{os.getppid()}"  # a live process
    copy.set_user_attr(f"worker:{other}", {"started": 0.0, "seed": 1})
    due = due_promotions(copy.get_trials(), rungs=2, eta=2)
    assert len(due) >= 2
    copy.set_user_attr(f"promotion-claim:{due[0].source}", other)
    copy.set_user_attr(f"promotion-claim:{due[1].source}", f"{other}0")  # a worker that is gone
    runner.enqueue_promotions(copy)
    waiting = copy.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["promoted_from"] for t in waiting) == sorted(
        p.source for p in due[1:]
    )
    assert all(t.user_attrs["rung"] == 1 for t in waiting)
    runner.enqueue_promotions(copy)  # enqueued once: nothing more is due
    assert len(copy.get_trials(states=(TrialState.WAITING,))) == len(waiting)


def test_study_with_another_space_is_refused_untouched(
    tiny_space: Path, two_arch_space: Path, tmp_path: Path
) -> None:
    run_search(_config(tiny_space, trials=1), tmp_path)
    before = (tmp_path / "t.journal").read_bytes()
    with pytest.raises(StudyError, match="another space file"):
        run_search(_config(two_arch_space, trials=1), tmp_path)
    assert (tmp_path / "t.journal").read_bytes() == before
