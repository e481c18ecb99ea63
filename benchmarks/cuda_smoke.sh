#!/usr/bin/env bash
# The CUDA path end to end: the quick suite and a short dys-jfb / two-stage sweep on a GPU,
# through the real command line; prints one table. Usage: benchmarks/cuda_smoke.sh OUTDIR
set -euo pipefail
out=${1:?usage: benchmarks/cuda_smoke.sh OUTDIR}
mkdir -p "$out"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m l2obench run --suite shortest-path --quick --device cuda --out "$out/quick"
cat > "$out/sweep.toml" <<'TOML'
name = "cuda-sweep"
problem = "shortest-path"
sizes = [5, 10, 20, 30, 50]
seeds = [0]
data = { n_train = 1000, n_val = 200, n_test = 200 }
budget = { max_epochs = 10, max_seconds = 120 }
[[methods]]
name = "dys-jfb"
[[methods]]
name = "two-stage"
TOML
python3 -m l2obench run --suite "$out/sweep.toml" --device cuda --out "$out/sweep"
python3 - "$out" <<'PY'
import sys
import l2obench
df = l2obench.load_results(sys.argv[1])
cols = ["suite", "size", "n_vars", "method", "status", "norm_regret", "epochs",
        "time_per_epoch_s", "peak_mem_mb", "device_peak_mem_mb", "fwd_iters_mean",
        "fwd_iters_max", "device_name"]
df = df.sort_values(["suite", "method", "size"])[cols]
df.to_csv(sys.argv[1] + "/cuda_smoke.csv", index=False)
print(df.to_string(index=False))
PY
