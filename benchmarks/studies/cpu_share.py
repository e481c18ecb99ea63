"""Whether each cell kept to its share of the CPUs (``--threads``).

A cell's record holds the seconds its threads ran (``cpu_s``) and the seconds they were ready
to run but waited for a core (``cpu_wait_s``). A thread is at every moment running, waiting for
a core, or asleep, so ``(cpu_s + cpu_wait_s) / wall`` is the mean number of the cell's threads
that wanted a core: at most 1 for a cell that computes on one thread, whatever else the machine
runs (contention turns running into waiting and leaves the sum alone). A cell given ``--threads
1`` that reads clearly above 1 computed on a pool of its own (a library's threads that
``torch.set_num_threads`` does not reach: XLA's pool, diffcp's solves), and took cores from the
work beside it.

    python -m benchmarks.studies.cpu_share results/wip/shortest-path

prints, per method and size, the cells measured, their threads, and the largest mean number
of threads wanting a core; it exits 1 where a cell wanted more than its threads × ``--slack``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from l2obench.store import load_results

SLACK = 1.1  # the cell's own bookkeeping threads (a collector, a pool's idle wake-ups) add a little


def wanting(records: pd.DataFrame) -> pd.Series:
    """Per record, the mean number of its threads that ran or waited for a core over its wall
    time (NaN where not measured)."""
    if not {"cpu_s", "cpu_wait_s"} <= set(records):
        return pd.Series(math.nan, index=records.index)
    wall = (pd.to_datetime(records["finished_at"], utc=True)
            - pd.to_datetime(records["started_at"], utc=True)).dt.total_seconds()
    busy = pd.to_numeric(records["cpu_s"], errors="coerce") \
        + pd.to_numeric(records["cpu_wait_s"], errors="coerce")
    return (busy / wall.where(wall > 0)).astype(float)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder")
    parser.add_argument("--slack", type=float, default=SLACK,
                        help=f"allowed ratio over the cell's threads (default {SLACK})")
    args = parser.parse_args(argv)
    records = load_results(args.results)
    records = records.assign(wanting=wanting(records)).dropna(subset=["wanting"])
    if records.empty:
        print(f"no record in {args.results} holds cpu_s and cpu_wait_s")
        return 1
    threads = pd.to_numeric(records["torch_threads"], errors="coerce").fillna(1)
    records = records.assign(threads=threads, over=records["wanting"] > threads * args.slack)
    print(f"{'method':36} {'size':>5} {'cells':>5} {'threads':>7} {'wanting':>8}")
    for (label, size), cells in records.groupby(["method_label", "size"], sort=True):
        mark = "  above its share" if cells["over"].any() else ""
        print(f"{str(label)[:36]:36} {size:>5} {len(cells):>5} "
              f"{int(cells['threads'].max()):>7} {cells['wanting'].max():8.2f}{mark}")
    over = int(records["over"].sum())
    print(f"{over} of {len(records)} cells wanted more cores than their threads "
          f"(× {args.slack:g})")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
