"""Shared helpers for the test suite."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """One PyTorch thread in the test process: the tests' small tensors gain nothing from a
    second thread, and on a machine shared with other work a multi-threaded op waits for a busy
    core (the same layer test took 1 s alone and 50 s beside other processes)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_inherited_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without ``$COLUMNS`` (pytest-xdist's workers set it to 80), so that the
    command line draws for a pipe, as in a serial run, unless the test sets a width itself."""
    monkeypatch.delenv("COLUMNS", raising=False)


def tiny_suite(name: str = "tiny", seeds: str = "[0]") -> str:
    """A suite of 4 or 8 fast cells (k = 3, 4; dys-jfb and two-stage) for end-to-end tests."""
    return f"""
name = "{name}"
problem = "shortest-path"
sizes = [3, 4]
seeds = {seeds}
data = {{ n_train = 40, n_val = 16, n_test = 16 }}
budget = {{ max_epochs = 2, max_seconds = 60 }}

[[methods]]
name = "dys-jfb"
params = {{ lr = 0.01, max_iter = 500 }}

[[methods]]
name = "two-stage"
"""


def write_suite(folder: Path, text: str) -> Path:
    """``text`` as the suite file ``folder/suite.toml``."""
    path = folder / "suite.toml"
    path.write_text(text)
    return path


def run_main(argv: list[str]) -> tuple[int, str]:
    """The command line's ``main`` in this process: its exit code and everything it printed."""
    from l2obench.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue() + out.getvalue()


@pytest.fixture(scope="module")
def denoise_family() -> Iterator[None]:
    """The test task family (``tests/denoise_family``) registered for a module's tests, then
    removed, so that other modules see l2obench's own registries."""
    from tests.denoise_family import registered

    with registered():
        yield


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m l2obench`` as a user would, capturing its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "l2obench", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
