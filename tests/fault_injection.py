"""Fault injection: SIGKILLed sweeps, damaged records and concurrent sweeps on one folder.

    python tests/fault_injection.py                 # 24 kills, then the concurrent phases
    python tests/fault_injection.py --kills 3       # a short run (the slow test runs this)

Phase 1 starts ``l2obench run --jobs 2`` on an 18-cell suite again and again, SIGKILLs it at a
random moment each time, and between runs damages a random record (truncated, not JSON, a JSON
list, another cell's record); then one run completes the suite. Phase 2 runs two ``--force``
sweeps at once on the complete folder, phase 3 two ``--retry-failed`` sweeps at once after
marking six cells failed. It prints, and writes as JSON with ``--json``, for each phase: cells
expected, cells recorded, lost (a record that survived a kill undamaged but was rewritten or
removed), duplicated (a cell recorded twice) and runs per cell (from the superseded records),
and exits 1 if any phase broke its promise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from l2obench.record import Record, RecordError, Status  # noqa: E402
from l2obench.store import ResultStore, read_record  # noqa: E402

SUITE = """
name = "faults"
problem = "shortest-path"
sizes = [3, 4, 5]
seeds = [0, 1]
data = { n_train = 60, n_val = 20, n_test = 20 }
budget = { max_epochs = 40 }

[[methods]]
name = "two-stage"
params = { lr = [0.01, 0.02, 0.03] }
"""
N_CELLS = 18


@dataclass
class Phase:
    """What one phase expected and found."""

    name: str
    expected: int
    recorded: int
    lost: int
    duplicated: int
    runs_per_cell: dict[str, int] = field(default_factory=dict)
    notes: str = ""

    @property
    def promise_kept(self) -> bool:
        runs_ok = all(n == 1 for n in self.runs_per_cell.values()) if self.runs_per_cell \
            else True
        return (self.recorded == self.expected and self.lost == 0 and self.duplicated == 0
                and runs_ok)


def command(suite: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "l2obench", "run", "--suite", str(suite), "--out", str(out),
            "--device", "cpu", "--jobs", "2", "--threads", "1", *extra]


def records(out: Path) -> dict[str, Record]:
    """The intact records of the folder, by cell id (read without moving anything)."""
    found = {}
    for path in sorted((out / "records").glob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            record = read_record(path, path.stem)
        except (RecordError, OSError):  # damaged: not a record
            continue
        found[record.cell_id] = record
    return found


def superseded(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in (out / "records" / "superseded").glob("*.json"):
        cell_id = path.name.split(".")[0]
        counts[cell_id] = counts.get(cell_id, 0) + 1
    return counts


def damage(path: Path, rng: random.Random) -> str:
    how = rng.choice(["truncated", "garbage", "list", "foreign"])
    text = path.read_text(encoding="utf-8")
    content = {"truncated": text[: len(text) // 3].encode(), "garbage": b"\xff\x00garbage",
               "list": b"[1, 2, 3]",
               "foreign": json.dumps({**json.loads(text),
                                      "cell_id": "0123456789abcdef"}).encode()}[how]
    path.write_bytes(content)
    return how


def kills_phase(suite: Path, out: Path, kills: int, rng: random.Random) -> Phase:
    damaged: set[str] = set()
    survivors: dict[str, str | None] = {}  # cell id -> finished_at of a record that survived
    mid_sweep = 0  # kills that fell after the run had written a record
    for _ in range(kills):
        before = len(records(out))
        proc = subprocess.Popen(command(suite, out), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # A sweep takes a few seconds to start (more on a loaded machine): the window reaches
        # well past it, so that most kills fall between cells or while records are written.
        time.sleep(rng.uniform(0.5, 15.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)  # the cells' processes die with the sweep
        found = records(out)
        mid_sweep += len(found) > before
        for cell_id, record in found.items():
            survivors.setdefault(cell_id, record.finished_at)
        present = sorted(records(out))
        if present and rng.random() < 0.5:
            victim = rng.choice(present)
            damage(out / "records" / f"{victim}.json", rng)
            damaged.add(victim)
            survivors.pop(victim, None)
    finish = subprocess.run(command(suite, out), cwd=REPO, capture_output=True, text=True)
    final = records(out)
    lost = sum(1 for cell_id, finished in survivors.items()
               if cell_id not in final or final[cell_id].finished_at != finished)
    set_aside = len(list((out / "records" / "damaged").glob("*.json")))
    return Phase(f"SIGKILL x{kills}, damage between runs", N_CELLS, len(final), lost,
                 duplicated=_duplicates(out),
                 notes=f"{mid_sweep} kills after the run had recorded a cell; "
                       f"{len(damaged)} records damaged, {set_aside} set aside and rerun; "
                       f"final run exit {finish.returncode}; all ok: "
                       f"{all(r.status == Status.OK for r in final.values())}")


def _duplicates(out: Path) -> int:
    ids = [read_cell_id(p) for p in (out / "records").glob("*.json")
           if not p.name.startswith(".tmp-")]
    return len(ids) - len(set(ids))


def read_cell_id(path: Path) -> str:
    try:
        return read_record(path).cell_id
    except (RecordError, OSError):
        return path.stem


def concurrent_phase(name: str, suite: Path, out: Path, flag: str, cells: set[str]) -> Phase:
    before = superseded(out)
    procs = [subprocess.Popen(command(suite, out, flag), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]
    codes = [p.wait(timeout=1800) for p in procs]
    after = superseded(out)
    runs = {c: after.get(c, 0) - before.get(c, 0) for c in cells}
    final = records(out)
    return Phase(name, N_CELLS, len(final), lost=N_CELLS - len(final),
                 duplicated=_duplicates(out), runs_per_cell=runs,
                 notes=f"exit statuses {codes}; cells run: {sum(runs.values())} for "
                       f"{len(cells)} cells")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the phases here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        suite, out = Path(tmp) / "faults.toml", Path(tmp) / "out"
        suite.write_text(SUITE)
        phases = [kills_phase(suite, out, args.kills, rng)]
        everything = set(records(out))
        phases.append(concurrent_phase("two concurrent --force", suite, out, "--force",
                                       everything))
        store = ResultStore(out)
        failed = set(rng.sample(sorted(everything), 6))
        for cell_id in failed:
            record = store.read(cell_id)
            assert record is not None
            store.write(record.ended(Status.FAILED, "marked failed by the fault injection"),
                        replace=True)
        phases.append(concurrent_phase("two concurrent --retry-failed", suite, out,
                                       "--retry-failed", failed))
    print(f"{'phase':<36} {'expected':>8} {'recorded':>8} {'lost':>5} {'dup':>4} "
          f"{'runs/cell':>10}  kept")
    for p in phases:
        runs = sorted(set(p.runs_per_cell.values())) if p.runs_per_cell else ["-"]
        print(f"{p.name:<36} {p.expected:>8} {p.recorded:>8} {p.lost:>5} {p.duplicated:>4} "
              f"{'/'.join(map(str, runs)):>10}  {p.promise_kept}")
        print(f"    {p.notes}")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(p), "promise_kept": p.promise_kept}
                                         for p in phases], indent=1))
    return 0 if all(p.promise_kept for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
