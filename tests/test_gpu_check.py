"""The prepared GPU check runs end to end on CPU (device is a parameter), so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from l2obench import load_results

#: Subprocesses, a browser, pip or Ray: the full lane only (`pytest -m "not slow"` skips them).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def load_script() -> object:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_sweep_on_cpu(tmp_path: Path) -> None:
    script = load_script()
    code = script.main(  # type: ignore[attr-defined]
        [str(tmp_path), "--device", "cpu", "--sizes", "3", "--epochs", "1", "--no-quick",
         "--no-ratios", "--no-forms"]
    )
    assert code == 0
    records = load_results(tmp_path / "sweep")
    assert set(records["method"]) == set(script.SWEEP_METHODS)  # type: ignore[attr-defined]
    levers = script.LEVERS  # type: ignore[attr-defined]
    assert len(records) == len(script.SWEEP_METHODS) + sum(map(len, levers.values()))  # type: ignore[attr-defined]
    assert (records["status"] == "ok").all()
    jfb = records[records["method"] == "dys-jfb"]
    # a cell at the default projection does not record it (omit_default)
    projections = {json.loads(p).get("projection", "auto") for p in jfb["params"]}
    assert projections >= {"auto", *levers["projection"]}
    table = (tmp_path / "sweep.txt").read_text()
    assert "time_per_epoch_s" in table and "dys-implicit" in table


def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert load_script().main([str(tmp_path)]) == 2  # type: ignore[attr-defined]
