"""The CUDA path end to end, in one prepared run: the commands a GPU session executes, one table.

On a machine with a GPU::

    python benchmarks/gpu_check.py OUT            # device cuda, k = 5 … 100, then the ratios

runs, through the real command line, (1) the shortest-path suite's quick profile, (2) a sweep of
``dys-jfb`` (with ``two-stage`` and ``spo+`` beside it) over k = 5 … 100 with a short budget,
printing seconds per epoch, forward iterations, host and device peak memory and regret per size
(also written to ``OUT/sweep.csv``), and (3) the ratio comparisons (``python -m
benchmarks.ratios``) on the same machine, their JSON results in ``OUT/ratios/`` and their output
in ``OUT/ratios.txt`` (the comparisons measure on the CPU: they record that machine's CPU figures
beside the GPU sweep; they have no CUDA path yet).
``--device cpu --sizes 3 --epochs 1 --no-quick --no-ratios`` exercises the same code without a
GPU (the test suite does).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from l2obench import load_results

REPO = Path(__file__).resolve().parent.parent

#: Methods of the sweep: the DYS layer, and the two fastest exact-solver baselines beside it.
SWEEP_METHODS = ("dys-jfb", "two-stage", "spo+")

#: Columns of the printed table, from the records.
COLUMNS = [
    "size", "n_vars", "method", "status", "epochs", "time_per_epoch_s", "fwd_iters_mean",
    "fwd_iters_max", "peak_mem_mb", "device_peak_mem_mb", "norm_regret", "device_name",
]


def sweep_suite(sizes: Sequence[int], epochs: int, seconds: float) -> str:
    """A suite file for the sweep: the shortest-path protocol's data, a short budget."""
    methods = "\n".join(f'[[methods]]\nname = "{name}"\n' for name in SWEEP_METHODS)
    return (
        'name = "gpu-check"\nproblem = "shortest-path"\n'
        f"sizes = [{', '.join(str(k) for k in sizes)}]\nseeds = [0]\n"
        "data = { n_train = 1000, n_val = 200, n_test = 200 }\n"
        f"budget = {{ max_epochs = {epochs}, max_seconds = {seconds} }}\n{methods}"
    )


def l2obench(*args: str) -> None:
    """Run the command line in this interpreter; a failing command stops the check."""
    subprocess.run([sys.executable, "-m", "l2obench", *args], check=True)


def describe_device(device: str) -> str:
    if device == "cuda":
        return f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}"
    return f"torch {torch.__version__}, {device}"


def sweep_table(results: Path) -> str:
    """The sweep's records as a fixed-width table, sorted by method and size."""
    df = load_results(results).sort_values(["method", "size"])
    return df[COLUMNS].to_string(index=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the records, tables and logs")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--sizes", default="5,10,20,30,50,100",
                        help="grid sizes k of the sweep (default: 5,10,20,30,50,100)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per sweep cell")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="training seconds per sweep cell")
    parser.add_argument("--no-quick", dest="quick", action="store_false",
                        help="skip the quick profile of the suite")
    parser.add_argument("--no-ratios", dest="ratios", action="store_false",
                        help="skip the ratio comparisons (python -m benchmarks.ratios)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; use --device cpu to exercise the script")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    print(describe_device(args.device), flush=True)
    if args.quick:
        l2obench("run", "--suite", "shortest-path", "--quick", "--device", args.device,
                 "--out", str(args.out / "quick"))
    suite = args.out / "sweep.toml"
    sizes = [int(k) for k in args.sizes.split(",")]
    suite.write_text(sweep_suite(sizes, args.epochs, args.seconds))
    l2obench("run", "--suite", str(suite), "--device", args.device,
             "--out", str(args.out / "sweep"))
    table = sweep_table(args.out / "sweep")
    (args.out / "sweep.txt").write_text(table + "\n")
    load_results(args.out / "sweep").to_csv(args.out / "sweep.csv", index=False)
    print(table, flush=True)
    if args.ratios:
        results = (args.out / "ratios").resolve()
        with open(args.out / "ratios.txt", "w") as log:
            ratios = subprocess.run(
                [sys.executable, "-m", "benchmarks.ratios", "--out", str(results)],
                cwd=REPO, check=False, stdout=subprocess.PIPE, text=True,
            )
            log.write(ratios.stdout)
        print(ratios.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
