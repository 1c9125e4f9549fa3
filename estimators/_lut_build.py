"""Building a latency table: time every distinct part of a space (and the baselines'),
in batches against the reference block, resuming an interrupted build."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

from estimators._latency import LatencyConfig, host_info, measure_many, part_target
from estimators._lut import (
    REFERENCE_PART,
    LatencyTable,
    LutError,
    Progress,
    TableEntry,
    _with_resolutions,
    load_table,
    part_key,
    save_table,
)
from search_space import (
    Part,
    SearchSpace,
    SpecError,
    baseline_names,
    default_space_text,
    get_baseline,
    load_space,
)

__all__ = ["build_table", "table_parts"]


def table_parts(space: SearchSpace, num_classes: int, baselines: bool = True) -> dict[str, Part]:
    """What a table of ``space`` times, by key: every distinct part of the space, and with
    ``baselines`` the parts of the four MobileNet baselines at width 1.0 and the space's
    resolutions (the first part of each key)."""
    parts: dict[str, Part] = {}
    for p in space.distinct_parts(num_classes):
        parts.setdefault(part_key(p, num_classes), p)
    if baselines:
        for name in baseline_names():
            for res in space.resolutions:
                try:
                    spec = get_baseline(name, 1.0, res, num_classes)
                except SpecError:  # a resolution below the baseline's total stride
                    continue
                for p in spec.parts():
                    parts.setdefault(part_key(p, num_classes), p)
    return parts


def build_table(
    out: str | Path,
    space_path: str | Path | None = None,
    config: LatencyConfig | None = None,
    num_classes: int = 10,
    resolutions: Sequence[int] | None = None,
    progress: Progress | None = None,
    batch: int = 8,
    lock_timeout: float | None = None,
    baselines: bool = True,
) -> LatencyTable:
    """Time every distinct part of the space and write the table to ``out``.

    With ``baselines``, the parts of the four MobileNet baselines at width 1.0 and the
    table's resolutions are timed too (a few dozen more), so that a search with this table
    draws the baselines from the same table as its candidates.

    Parts are timed ``batch`` at a time in interleaved rounds, and the file is rewritten
    atomically after each batch; when ``out`` already holds a table of the same space,
    protocol and machine, its entries are kept and only the missing parts are timed
    (an interrupted build resumes)."""
    config = config or LatencyConfig()
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise LutError(f"num_classes must be a positive integer, got {num_classes!r}")
    if batch < 1:
        raise LutError(f"batch must be a positive integer, got {batch}")
    if space_path is None:
        text = default_space_text()
    else:
        try:
            text = Path(space_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""  # load_space below reports the reason
    space = _with_resolutions(load_space(space_path), resolutions)
    parts = table_parts(space, num_classes, baselines)
    table = LatencyTable(
        space_name=space.name,
        space_text=text,
        resolutions=tuple(space.resolutions),
        num_classes=num_classes,
        config=config,
        host=host_info(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        expected=len(parts),
    )
    out = Path(out)
    if out.exists():
        old = load_table(out)
        _check_resumable(old, table, out)
        table.entries = {k: e for k, e in old.entries.items() if k in parts}
        table.reference_batches_us = old.reference_batches_us
        table.created = old.created
    todo = [k for k in parts if k not in table.entries]
    done = len(parts) - len(todo)
    if progress:
        progress(done, len(parts))
    save_table(table, out)
    reference = part_target(REFERENCE_PART, num_classes, config.seed)
    for start in range(0, len(todo), batch):
        keys = todo[start : start + batch]
        targets = [part_target(parts[k], num_classes, config.seed) for k in keys]
        results = measure_many(
            targets, config, reference=reference, names=keys, lock_timeout=lock_timeout
        )
        for k, r in zip(keys, results, strict=True):
            table.entries[k] = TableEntry(
                k, r.ratio_to_reference or 0.0, r.median_us, r.p10_us, r.p90_us, r.iqr_us, r.count
            )
        table.reference_batches_us.append(results[0].reference_median_us or 0.0)
        save_table(table, out)
        done += len(keys)
        if progress:
            progress(done, len(parts))
    return table


def _check_resumable(old: LatencyTable, new: LatencyTable, path: Path) -> None:
    checks = [
        ("space", old.space_text, new.space_text),
        ("resolutions", old.resolutions, new.resolutions),
        ("num_classes", old.num_classes, new.num_classes),
        ("protocol", old.config, new.config),
        ("host cpu", old.host.get("cpu"), new.host.get("cpu")),
        ("torch version", old.host.get("torch"), new.host.get("torch")),
    ]
    for name, a, b in checks:
        if a != b:
            raise LutError(
                f"{str(path)!r} holds a table with another {name}; it cannot be resumed "
                "(delete it or choose another --out)"
            )
