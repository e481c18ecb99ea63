"""The built-in suites ship inside the wheel, so an installed l2obench finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

#: Subprocesses, a browser, pip or Ray: the full lane only (`pytest -m "not slow"` skips them).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_suites_and_finds_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = (tmp_path / "dist").glob("l2obench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    suites = sorted(p.name for p in (REPO / "suites").glob("*.toml"))
    for suite in suites:
        assert f"l2obench/builtin_suites/{suite}" in names
    for template in ("LEADERBOARD.md", "index.html"):
        assert f"l2obench/report/templates/{template}" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, text=True,
    )
    probe = ("import l2obench, l2obench.suite as s; "
             "print(l2obench.__file__); print(sorted(s.builtin_suites()))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(site)}).stdout
    installed_at, found = out.splitlines()
    assert installed_at.startswith(str(site))
    assert sorted(eval(found)) == [Path(s).stem for s in suites]
