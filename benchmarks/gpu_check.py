"""The CUDA path end to end, in one prepared run: the commands a GPU session executes, one table.

On a machine with a GPU::

    python benchmarks/gpu_check.py OUT            # device cuda, k = 5 … 100, then the ratios

runs, through the real command line, (1) the shortest-path suite's quick profile, (2) a sweep
over k = 5 … 100 with a short budget of every DYS method (``dys-jfb``, ``dys-unrolled``,
``dys-implicit``, ``dys-jfb-jax``) and of ``dys-jfb`` with each of the layer's levers
(:data:`LEVERS`: warm starts, the host's look interval ``check_every``, the projection forms),
with ``two-stage`` and ``spo+`` beside them, printing seconds per epoch, forward and backward
iterations, host and device peak memory and regret per size (also written to
``OUT/sweep.csv``), (3) the projection forms' solve times on the device
(``python -m benchmarks.studies.dys_scale forms --device cuda``, into ``OUT/forms.json``), and
(4) the ratio comparisons (``python -m benchmarks.comparisons.ratios``) on the same machine, their
JSON results in ``OUT/ratios/`` and their output in ``OUT/ratios.txt`` (the comparisons measure on
the CPU: they record that machine's CPU figures beside the GPU sweep; they have no CUDA path yet).
``--device cpu --sizes 3 --epochs 1 --no-quick --no-ratios --no-forms`` exercises the same code
without a GPU (the test suite does).
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

#: Methods of the sweep, each with its parameter grid: every DYS method at its defaults, and
#: the two fastest exact-solver baselines beside them.
SWEEP_METHODS: dict[str, dict[str, list[object]]] = {
    "dys-jfb": {}, "dys-unrolled": {}, "dys-implicit": {}, "dys-jfb-jax": {},
    "two-stage": {}, "spo+": {},
}

#: The layer's levers, each swept on ``dys-jfb`` beside its defaults: warm starts, how often
#: the host looks at which instances stopped (each look a synchronisation on a GPU), and the
#: storage of the affine projection (the GPU figures behind the ``auto`` rule).
LEVERS: dict[str, list[object]] = {
    "warm_start": [True],
    "check_every": [1, 32],
    "projection": ["dense", "kronecker", "grid", "dct"],
}

#: Columns of the printed table, from the records.
COLUMNS = [
    "size", "n_vars", "method_label", "status", "epochs", "time_per_epoch_s", "fwd_iters_mean",
    "fwd_iters_max", "bwd_iters_mean", "peak_mem_mb", "device_peak_mem_mb", "norm_regret",
    "device_name",
]


def sweep_suite(sizes: Sequence[int], epochs: int, seconds: float) -> str:
    """A suite file for the sweep: the shortest-path protocol's data, a short budget.

    The dense projection past its threshold would be an ``n × n`` matrix of gigabytes at
    k = 100, so that lever runs only up to k = 30.
    """
    blocks = [f'[[methods]]\nname = "{name}"\n' for name in SWEEP_METHODS]
    for lever, values in LEVERS.items():
        if lever == "projection" and max(sizes) > 30:
            values = [v for v in values if v != "dense"]
        listed = ", ".join(toml_value(v) for v in values)
        blocks.append(f'[[methods]]\nname = "dys-jfb"\nparams = {{ {lever} = [{listed}] }}\n')
    methods = "\n".join(blocks)
    return (
        'name = "gpu-check"\nproblem = "shortest-path"\n'
        f"sizes = [{', '.join(str(k) for k in sizes)}]\nseeds = [0]\n"
        "data = { n_train = 1000, n_val = 200, n_test = 200 }\n"
        f"budget = {{ max_epochs = {epochs}, max_seconds = {seconds} }}\n{methods}"
    )


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def l2obench(*args: str) -> None:
    """Run the command line in this interpreter; a failing command stops the check."""
    subprocess.run([sys.executable, "-m", "l2obench", *args], check=True)


def describe_device(device: str) -> str:
    if device == "cuda":
        return f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}"
    return f"torch {torch.__version__}, {device}"


def sweep_table(results: Path) -> str:
    """The sweep's records as a fixed-width table, sorted by method and size."""
    df = load_results(results).sort_values(["method_label", "size"])
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
                        help="skip the ratio comparisons (python -m benchmarks.comparisons.ratios)")
    parser.add_argument("--no-forms", dest="forms", action="store_false",
                        help="skip the projection forms' solve times "
                             "(python -m benchmarks.studies.dys_scale forms)")
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
    if args.forms:
        subprocess.run([sys.executable, "-m", "benchmarks.studies.dys_scale", "forms", "--device",
                        args.device, "--out", str(args.out.resolve())], cwd=REPO, check=True)
    if args.ratios:
        results = (args.out / "ratios").resolve()
        with open(args.out / "ratios.txt", "w") as log:
            ratios = subprocess.run(
                [sys.executable, "-m", "benchmarks.comparisons.ratios", "--out", str(results)],
                cwd=REPO, check=False, stdout=subprocess.PIPE, text=True,
            )
            log.write(ratios.stdout)
        print(ratios.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
