"""The ratio comparisons' result types and comparisons.md's generated tables (fast: nothing is
measured here but one trivial comparison)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from benchmarks.comparisons import tables
from benchmarks.comparisons.comparison import (
    Comparison,
    Findings,
    Side,
    Table,
    at_least,
    at_most,
    load_result,
    ratio_check,
    write_result,
)


def test_target_text_and_check_come_from_threshold_and_direction() -> None:
    fast = at_most(0.25, "×")
    assert fast.text == "≤ 0.25×"
    assert fast.met(0.25) and fast.met(0.01) and not fast.met(0.2501)
    big = at_least(50, "×")
    assert big.text == "≥ 50×"
    assert big.met(50) and not big.met(49.9)
    assert at_most(0, "instances worse").text == "≤ 0 instances worse"
    assert at_most(1e-6).text == "≤ 1e-06"
    assert not fast.met(math.nan) and not big.met(math.nan)


def test_a_check_prints_enough_digits_for_its_verdict() -> None:
    check = ratio_check("regret", Side(0.3547, ""), Side(0.3533, ""), at_most(1, "×"))
    assert not check.passed
    assert check.value_text == "1.004×"  # not "1×", which would read as a pass
    assert ratio_check("x", Side(1.0, "s"), Side(4.0, "s"), at_most(0.5, "×")).value_text == "0.25×"
    assert Side(0.0008, "s", "median").text == "800 µs (median)"


@dataclass(frozen=True)
class Sizes:
    n: int


def sums(sizes: Sizes) -> Findings:
    """A real, tiny measurement: a sum against the closed form."""
    ours = float(sum(range(sizes.n + 1)))
    check = ratio_check(f"sum to {sizes.n}", Side(ours, ""), Side(sizes.n * (sizes.n + 1) / 2, ""),
                        at_most(1.0, "×"))
    return Findings([check], [Table("points", ["n", "sum"], [[sizes.n, ours]])], ["a note"])


DEMO = Comparison("demo", "A demo comparison", {"full": Sizes(10), "quick": Sizes(3)}, sums)


def test_a_result_round_trips_through_json(tmp_path: Path) -> None:
    result = DEMO.run("quick")
    assert result.error is None and result.settings == {"n": 3}
    assert result.checks[0].passed and result.checks[0].value == 1.0
    path = write_result(result, tmp_path)
    assert path.name.startswith("demo-quick-") and path.suffix == ".json"
    raw = json.loads(path.read_text())
    assert raw["checks"][0]["target"]["text"] == "≤ 1×" and raw["checks"][0]["passed"] is True
    assert load_result(path) == result


def test_a_verdict_that_does_not_follow_its_value_is_refused(tmp_path: Path) -> None:
    path = write_result(DEMO.run("full"), tmp_path)
    raw = json.loads(path.read_text())
    raw["checks"][0]["value"] = 2.0  # passed stays true
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="does not follow"):
        load_result(path)


def test_a_comparison_that_raises_gives_a_result_with_its_error() -> None:
    def broken(sizes: Sizes) -> Findings:
        raise RuntimeError(f"cannot measure {sizes.n}")

    result = replace(DEMO, measure=broken).run("quick")
    assert result.error == "RuntimeError: cannot measure 3" and result.checks == []


def test_render_replaces_only_the_generated_blocks(tmp_path: Path) -> None:
    older = DEMO.run("full")
    newer = replace(older, started="2999-01-01T00:00:00+00:00",
                    finished="2999-01-01T00:01:00+00:00")
    write_result(older, tmp_path)
    write_result(newer, tmp_path)
    write_result(DEMO.run("quick"), tmp_path)  # quick results are never published
    latest = tables.latest_results(tmp_path)
    assert latest == {"demo": newer}
    text = ("# Prose\n\nBefore.\n"
            "<!-- BEGIN generated: demo (python -m benchmarks.comparisons.tables) -->\n"
            "stale\n<!-- END generated: demo -->\nBetween.\n"
            "<!-- BEGIN generated: ratios-summary -->\n<!-- END generated: ratios-summary -->\n"
            "After.\n")
    rendered = tables.render(text, latest)
    assert "stale" not in rendered and "| sum to 10 |" in rendered
    assert "2999-01-01 00:00" in rendered
    assert rendered.startswith("# Prose\n\nBefore.\n") and rendered.endswith("After.\n")
    assert "\nBetween.\n" in rendered
    assert tables.render(rendered, latest) == rendered
    with pytest.raises(ValueError, match="no full-profile result"):
        tables.render(text.replace("demo", "other"), latest)
    with pytest.raises(ValueError, match="no block for demo"):
        tables.render("no blocks\n", latest)


def test_results_md_tables_are_current_with_the_committed_results() -> None:
    text = tables.COMPARISONS_MD.read_text()
    assert tables.render(text, tables.latest_results()) == text, (
        "benchmarks/results/comparisons.md is out of date: run "
        "python -m benchmarks.comparisons.tables"
    )

