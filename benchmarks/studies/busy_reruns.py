"""How much a busy machine slowed the cells that a sweep ran again on a quiet one.

``l2obench run --retry-busy`` moves each busy record (its threads waited for a core, or, in
older records, a 1-minute load average above the cores at its cell's start or end) to
``records/superseded/`` and runs its cell again. Training is deterministic for a given seed and
code, so where the rerun repeats the busy run's epochs (the same validation score, epoch by
epoch) each common epoch did the same work twice, and the seconds it took, busy over quiet,
measure the slowdown. Beside it, where the records hold it, the slowdown their waiting for a
core accounts for (``1 + cpu_wait_s / cpu_s``, busy over quiet): the measurement that marks a
cell busy. A pair whose common epochs disagree is reported and left out of the ratio.

    python -m benchmarks.studies.busy_reruns results/wip/shortest-path

prints one row per pair and the median of the pairs' median ratios.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from l2obench.record import Record, RecordError, epoch_val_score
from l2obench.store import ResultStore, read_record

SAME_SCORE = 1e-9  # relative: a deterministic rerun repeats the validation scores to rounding


@dataclass(frozen=True)
class Pair:
    """A busy record and the quiet record of the same cell that replaced it."""

    busy: Record
    quiet: Record

    def epoch_seconds(self) -> tuple[list[float], list[float]]:
        """The training seconds of each epoch both runs completed (busy, quiet)."""
        return _per_epoch(self.busy), _per_epoch(self.quiet)

    def same_epochs(self) -> bool:
        """Whether both runs' common epochs have the same validation scores."""
        for a, b in zip(self.busy.history, self.quiet.history, strict=False):
            sa, sb = epoch_val_score(a), epoch_val_score(b)
            if sa is None or sb is None or abs(sa - sb) > SAME_SCORE * max(1.0, abs(sb)):
                return False
        return True

    def ratios(self) -> list[float]:
        """Busy over quiet seconds for each common epoch."""
        busy, quiet = self.epoch_seconds()
        return [b / q for b, q in zip(busy, quiet, strict=False) if q > 0]


def _per_epoch(record: Record) -> list[float]:
    cumulative = [float(entry["train_s"]) for entry in record.history if "train_s" in entry]
    return [b - a for a, b in zip([0.0, *cumulative], cumulative, strict=False)]


def pairs(results: Path) -> list[Pair]:
    """Each superseded busy record of ``results`` with the quiet record now kept for its cell."""
    store = ResultStore(results)
    found = []
    for old in sorted((store.records / "superseded").glob("*.json")):
        cell_id = old.name.split(".")[0]
        try:
            busy = read_record(old, cell_id)
        except (FileNotFoundError, RecordError) as exc:
            print(f"skipped {old}: {exc}", file=sys.stderr)
            continue
        quiet = store.peek(cell_id)
        if quiet is None or not busy.busy or quiet.busy:
            continue
        found.append(Pair(busy, quiet))
    return found


def _load_pair(record: Record) -> str:
    return f"{record.load_start:.2f}→{record.load_end:.2f}"


def _by_wait(busy: Record, quiet: Record) -> str:
    """The slowdown the busy run's waiting for a core accounts for, against the quiet run's
    ("—" where either record lacks the measurement)."""
    stretch = [1 + r.cpu_wait_s / r.cpu_s for r in (busy, quiet)
               if r.cpu_s and r.cpu_wait_s is not None]
    return f"{stretch[0] / stretch[1]:.3f}" if len(stretch) == 2 else "—"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder with records/superseded/")
    args = parser.parse_args(argv)
    found = pairs(args.results)
    if not found:
        print(f"no busy record in {args.results} has been replaced by a quiet one")
        return 1
    medians = []
    print(f"{'cell':32} {'load busy':>12} {'load quiet':>12} {'epochs':>7} {'ratio':>6} "
          f"{'by wait':>7}")
    for pair in found:
        busy, quiet = pair.busy, pair.quiet
        epochs = f"{busy.epochs}/{quiet.epochs}"
        label = f"{busy.method_label} {busy.size_param or 'size'}={busy.size} s{busy.seed}"
        if not pair.same_epochs():
            print(f"{label[:32]:32} {_load_pair(busy):>12} {_load_pair(quiet):>12} "
                  f"{epochs:>7}  (epochs differ: left out)")
            continue
        ratio = statistics.median(pair.ratios())
        medians.append(ratio)
        print(f"{label[:32]:32} {_load_pair(busy):>12} {_load_pair(quiet):>12} "
              f"{epochs:>7} {ratio:6.3f} {_by_wait(busy, quiet):>7}")
    if medians:
        print(f"median over {len(medians)} cell(s) of the busy/quiet seconds an epoch: "
              f"{statistics.median(medians):.3f}")
    return 0 if medians and all(math.isfinite(m) for m in medians) else 1


if __name__ == "__main__":
    raise SystemExit(main())
