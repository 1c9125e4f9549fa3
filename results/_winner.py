"""The candidate to ship from a ``nasctl compare`` folder: compare.csv's winner and its
trained weights."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from results._checkpoint import read_checkpoint
from results._export_format import ExportError
from search_space import ArchSpec, SpecError, format_arch, parse_arch

__all__ = ["CompareWinner", "compare_winner"]


@dataclass(frozen=True)
class CompareWinner:
    """The candidate to ship from a ``nasctl compare`` folder (see :func:`compare_winner`)."""

    name: str
    trial: int | None
    accuracy: float
    ratio_to_v2: float
    beats: tuple[str, ...]
    spec: ArchSpec
    checkpoint: Path
    table: Path


_WINNER_COLUMNS = ("name", "baseline", "trial", "accuracy", "ratio_to_v2", "dominates", "arch")


def compare_winner(folder: str | Path) -> CompareWinner:
    """The winner of a ``nasctl compare`` run in ``folder`` (``<runs>/<study>/compare``):
    among the retrained search candidates in ``compare.csv`` that beat at least one
    baseline (more accurate on the held-out test split, and faster relative to MobileNetV2
    in every latency run: compare's ``dominates`` column), the most accurate on the
    validation split (``val_accuracy``; picking on test would make its test figure
    optimistic; tables written before the test split rank by ``accuracy``); ties go to the
    lower x V2. ``accuracy`` of the result is its test top-1. Its
    trained weights are compare's checkpoint ``models/<name>.pt``, whose recorded
    architecture must be the one compare.csv reports. No candidate beating a baseline is
    an ``ExportError``: compare found nothing better to ship."""
    folder = Path(folder)
    table = folder / "compare.csv"
    if not table.is_file():
        raise ExportError(
            f"no compare results at {str(table)!r}: run `nasctl compare` on the study first"
        )
    try:
        with table.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(f"cannot read {str(table)!r}: {exc}") from None
    missing = [c for c in _WINNER_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ExportError(f"{str(table)!r} is not a compare table (no rows, or lacks {missing})")
    try:
        winners = sorted(
            (
                (-_selection_accuracy(r), float(r["ratio_to_v2"]), r)
                for r in rows
                if r["baseline"] == "False" and r["dominates"].strip()
            ),
            key=lambda t: (t[0], t[1]),
        )
    except ValueError as exc:
        raise ExportError(f"{str(table)!r}: unreadable accuracy or ratio_to_v2: {exc}") from None
    if not winners:
        raise ExportError(
            f"no candidate in {str(table)!r} beats a baseline (more accurate and faster in "
            "every latency run): there is no compare winner; export a candidate by hand "
            "with --trial N --checkpoint <compare folder>/models/trial_N.pt"
        )
    _, ratio, row = winners[0]
    try:
        spec = parse_arch(row["arch"])
    except SpecError as exc:
        raise ExportError(f"{str(table)!r}: {row['name']}'s arch does not parse: {exc}") from None
    checkpoint = folder / "models" / f"{row['name']}.pt"
    if not checkpoint.is_file():
        raise ExportError(
            f"compare winner {row['name']}'s trained weights {str(checkpoint)!r} are missing "
            "(rerun `nasctl compare` to retrain it)"
        )
    recorded = read_checkpoint(checkpoint)[1]
    if recorded is not None and recorded != spec:
        raise ExportError(
            f"{str(checkpoint)!r} holds {format_arch(recorded)}, not the {row['name']} that "
            f"{str(table)!r} reports (rerun `nasctl compare`)"
        )
    trial = int(float(row["trial"])) if row["trial"].strip() else None
    beats = tuple(b.strip() for b in row["dominates"].split(","))
    accuracy = float(row["accuracy"])
    return CompareWinner(row["name"], trial, accuracy, ratio, beats, spec, checkpoint, table)


def _selection_accuracy(row: dict[str, str]) -> float:
    """What the winner is chosen by: validation top-1 where compare recorded it."""
    val = (row.get("val_accuracy") or "").strip()
    return float(val) if val else float(row["accuracy"])
