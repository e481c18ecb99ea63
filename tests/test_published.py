"""Every published page is what ``l2obench report`` makes of its records, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_main

RESULTS = REPO / "results"
#: Lines that say when and how a page was made, not what it shows.
_CIRCUMSTANCES = ("- **report made (UTC):**", "- **report command:**")


def _content(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines()
            if not line.startswith(_CIRCUMSTANCES)]


#: The published suites: the folders under results/ with a page.
SUITES = sorted(p.name for p in RESULTS.iterdir() if (p / "LEADERBOARD.md").is_file())


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_a_published_page_regenerates_from_its_records(suite: str, tmp_path: Path) -> None:
    published = RESULTS / suite
    code, text = run_main(["report", "--results", str(published), "--suite", suite,
                           "--out", str(tmp_path), "--notes", str(published / "NOTES.md")])
    assert code == 0, text
    assert _content(tmp_path / "LEADERBOARD.md") == _content(published / "LEADERBOARD.md")
    tables = sorted(p.relative_to(published) for p in published.glob("tables/*.csv"))
    assert tables == sorted(p.relative_to(tmp_path) for p in tmp_path.glob("tables/*.csv"))
    for name in [Path("aggregates.csv"), *tables]:
        assert (tmp_path / name).read_text() == (published / name).read_text(), name
    figures = {p.name for p in (published / "figures").iterdir()}
    assert figures == {p.name for p in (tmp_path / "figures").iterdir()}  # none stale


def _records(suite: str) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in (RESULTS / suite / "records").glob("*.json")]


@pytest.mark.parametrize("suite", SUITES)
def test_the_readmes_agree_with_the_records(suite: str) -> None:
    """Each page's README names every commit its records were made at, and results/README.md
    each page's CPU as recorded, with a warning where the pages' CPUs differ."""
    records = _records(suite)
    readme = (RESULTS / suite / "README.md").read_text(encoding="utf-8")
    for commit in {str(r["git_commit"])[:7] for r in records}:
        assert f"`{commit}`" in readme, commit
    index = (RESULTS / "README.md").read_text(encoding="utf-8")
    row = next(line for line in index.splitlines() if line.startswith(f"| `{suite}` |"))
    for model in {str(r["device_name"]) for r in records}:
        assert f"`{model}`" in row, model
    models = {str(r["device_name"]) for name in SUITES for r in _records(name)}
    assert (len(models) > 1) == ("pages come from different CPUs" in index)
