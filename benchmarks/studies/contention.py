"""How much cells slow each other when several run at once on this machine's cores.

A sweep's ``--jobs N`` runs N cells side by side, each with ``--threads`` torch threads. On a
machine whose cores are shared (a virtual machine's vCPUs, hyperthreads) or whose memory
bandwidth is the limit, N cells of one thread each can be slower than one alone even while
the load average stays at the number of cores. This measures it for the workload of the
budget-bound cells: the DYS layer's fixed-point step at shortest path k (one thread, a batch of
instances, float32: the step ``dys-jfb`` repeats some 400 times per instance), run for a few
seconds by one process alone, then by ``--jobs`` processes at once, in interleaved rounds.

    python -m benchmarks.studies.contention --jobs 2 --k 100 --seconds 20 --rounds 3

prints the steps per second alone and side by side, their ratio (alone over side by side:
how much longer a budget-bound cell's epoch takes), how long each process waited for a core
(the measurement a sweep's records hold, ``l2obench.measure.cpu_waiting``: the study checks
that it accounts for the slowdown) and the load average before and after; ``--out`` writes the
same as a dated Markdown file. Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

WORKER = "_work"


def _work(k: int, batch: int, seconds: float) -> None:
    """One process: the DYS step at shortest path k on one thread; prints steps per second."""
    import torch

    from l2obench.layers.dys import DYSLayer
    from l2obench.measure import cpu_waiting
    from l2obench.problems.shortest_path import ShortestPath

    torch.set_num_threads(1)
    problem = ShortestPath(k=k, n_train=1, n_val=1, n_test=1, seed=0)
    layer = DYSLayer(problem.lp())
    generator = torch.Generator().manual_seed(0)
    w = torch.rand(batch, layer.n_vars, generator=generator)
    z = torch.zeros_like(w)
    with torch.no_grad(), cpu_waiting() as cpu:
        shift = layer.aff((-layer.alpha * layer.sign) * w)
        for _ in range(3):
            z = layer.operator(z, shift)
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            z = layer.operator(z, shift)
            steps += 1
    waited = None if not cpu.cpu_s or cpu.wait_s is None else cpu.wait_s / cpu.cpu_s
    print(json.dumps({"steps_per_s": steps / elapsed, "waited": waited}))


def _side_by_side(n: int, k: int, batch: int, seconds: float) -> list[tuple[float, float]]:
    """Each process's steps per second and the fraction of its running time it waited for a
    core (NaN where the OS does not say)."""
    command = [sys.executable, "-m", "benchmarks.studies.contention", WORKER,
               str(k), str(batch), str(seconds)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        waited = result["waited"]
        rates.append((float(result["steps_per_s"]), math.nan if waited is None else waited))
    return rates


def _load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER]:
        _work(int(argv[1]), int(argv[2]), float(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes side by side (default: the cores)")
    parser.add_argument("--k", type=int, default=100, help="shortest-path grid size")
    parser.add_argument("--batch", type=int, default=64, help="instances per step")
    parser.add_argument("--seconds", type=float, default=20.0, help="per process and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write a Markdown file into this folder")
    args = parser.parse_args(argv)
    if args.jobs < 2 or args.rounds < 1 or args.seconds <= 0:
        parser.error("--jobs must be at least 2, --rounds at least 1, --seconds positive")
    load_before = _load()
    alone_runs: list[tuple[float, float]] = []
    together_runs: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        alone_runs += _side_by_side(1, args.k, args.batch, args.seconds)
        together_runs += _side_by_side(args.jobs, args.k, args.batch, args.seconds)
    load_after = _load()
    alone, alone_waits = zip(*alone_runs, strict=True)
    together, together_waits = zip(*together_runs, strict=True)
    ratio = statistics.median(alone) / statistics.median(together)
    wait_alone, wait_together = statistics.median(alone_waits), statistics.median(together_waits)
    stamp = datetime.now(UTC)
    lines = [
        f"# Cells side by side: {args.jobs} at once against one alone "
        f"({stamp:%Y-%m-%d %H:%M} UTC)",
        "",
        f"The DYS step at shortest path k = {args.k}, a batch of {args.batch}, one torch "
        f"thread per process, {args.seconds:g} s a process, {args.rounds} interleaved rounds "
        f"(`python -m benchmarks.studies.contention --jobs {args.jobs} --k {args.k} "
        f"--batch {args.batch} --seconds {args.seconds:g} --rounds {args.rounds}`).",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"1-minute load average {load_before:.2f} before, {load_after:.2f} after.",
        "",
        "| | steps per second (median) | waited for a core (median, % of running) | "
        "each process's rates |",
        "|---|---:|---:|---|",
        f"| one alone | {statistics.median(alone):.1f} | {100 * wait_alone:.1f} | "
        f"{', '.join(f'{r:.1f}' for r in alone)} |",
        f"| {args.jobs} side by side | {statistics.median(together):.1f} | "
        f"{100 * wait_together:.1f} | {', '.join(f'{r:.1f}' for r in together)} |",
        "",
        f"Alone over side by side: **{ratio:.2f}×** (how much longer a budget-bound cell's "
        f"epoch takes beside {args.jobs - 1} other{'s' if args.jobs > 2 else ''}). "
        f"The wait accounts for a slowdown of "
        f"{(1 + wait_together) / (1 + wait_alone):.2f}× (1 + the waited fraction, side by side "
        f"over alone); the rest is what the processes cost each other while running (memory "
        f"bandwidth, shared caches or hyperthreads).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"contention-{stamp:%Y%m%dT%H%M%SZ}.md"
        path.write_text(text, encoding="utf-8")
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
