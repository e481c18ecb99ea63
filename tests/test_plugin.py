"""A separately installed package adds a method and a problem through entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from l2obench import load_results
from tests.conftest import run_cli

#: Subprocesses, a browser, pip or Ray: the full lane only (`pytest -m "not slow"` skips them).
pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).parent / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin installed (with its entry points) into a throwaway folder."""
    source = tmp_path_factory.mktemp("plugin-src")
    shutil.copytree(PLUGIN, source, dirs_exist_ok=True)
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    assert list(target.glob("*.dist-info/entry_points.txt"))
    return target


def test_plugin_is_listed(plugin_path: Path) -> None:
    result = run_cli("list", env={"PYTHONPATH": str(plugin_path)})
    assert result.returncode == 0, result.stderr
    assert "mean-cost" in result.stdout
    assert "small-grid" in result.stdout


def test_plugin_absent_without_install() -> None:
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    assert "mean-cost" not in result.stdout


def test_plugin_suite_runs(plugin_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("run", "--suite", str(PLUGIN / "suite.toml"), "--device", "cpu",
                     "--out", str(out), env={"PYTHONPATH": str(plugin_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    frame = load_results(out)
    assert sorted(frame["method_label"].unique()) == ["mean-cost[shrink=0.5]",
                                                      "mean-cost[shrink=1]"]
    assert set(frame["problem"]) == {"small-grid"}
    assert len(frame) == 4 and (frame["status"] == "ok").all()
    assert frame["norm_regret"].between(0, 5).all()
