"""Reports: aggregation over seeds, figures, leaderboard pages, on synthetic and real records."""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from l2obench.errors import L2OBenchError
from l2obench.record import Record
from l2obench.report import ReportFiles, build_report, publish_dir
from l2obench.report.aggregate import AGGREGATION_NOTE, aggregate, mean_interval
from l2obench.report.leaderboard import (
    overall_ranking,
    overall_rankings,
    ranking_rule,
    ranks,
    rosters,
)
from l2obench.report.plots import draw, plot_specs
from l2obench.report.style import method_styles
from l2obench.store import ResultStore, load_results
from l2obench.tasks.base import get_task
from tests.conftest import REPO, run_cli, tiny_suite

DECISION = get_task("decision")
PLOTS = plot_specs(DECISION)

SIZES = (5, 10, 20, 40)
DYS, TWO_STAGE, SPO = "dys-jfb[lr=0.01]", "two-stage[lr=0.01]", "spo-plus"
COMMAND = "l2obench report --results runs/synth --out <out> & more"
#: Figures the synthetic records must give (CPU records without backward iterations give no
#: device-memory and no backward-iterations figure; three methods with three different training
#: objectives give no test-loss figure: their losses share no scale).
SYNTH_FIGURES = ("summary", "regret", "train_time", "time_per_epoch", "peak_mem", "fwd_iters")
OBJECTIVES = {"dys-jfb": "MSE to x*", "two-stage": "MSE to c", "spo-plus": "SPO+"}


def record(suite: str, method_label: str, size: int, seed: int, status: str = "ok") -> dict:
    """A complete record with the documented columns, as the runner writes them."""
    method = method_label.split("[")[0]
    ok = status == "ok"
    rng = np.random.default_rng([size, seed, len(method_label)])
    key = f"{suite}|{method_label}|{size}|{seed}".encode()
    return {
        "cell_id": hashlib.sha256(key).hexdigest()[:16],
        "suite": suite, "problem": "shortest-path", "size": size,
        "n_vars": 2 * size * (size - 1) if ok else None,
        "method": method, "method_label": method_label, "objective": OBJECTIVES.get(method),
        "params": '{"lr": 0.01}', "problem_params": f'{{"k": {size}}}',
        "seed": seed, "device": "cpu", "status": status,
        "error": None if ok else f"RuntimeError: <b>boom</b> in {method} & co",
        "test_loss": float(rng.uniform(0.1, 1.0)) * size,
        "norm_regret": float(rng.uniform(0.05, 0.3)),
        "accuracy": float(rng.uniform(0, 1)),
        "train_time_s": float(rng.uniform(1, 2)) * size**2,
        "epochs": 10 if ok else 0, "best_epoch": 7 if ok else None, "stopped_by": "epochs",
        "time_per_epoch_s": float(rng.uniform(0.1, 0.2)) * size**2,
        "infer_time_s": 1e-4, "peak_mem_mb": float(rng.uniform(10, 20)) * size,
        "device_peak_mem_mb": None,
        "fwd_iters_mean": float(rng.uniform(50, 60)) * size if method == "dys-jfb" else None,
        "fwd_iters_max": 500 if method == "dys-jfb" else None,
        "fwd_unconverged": 0 if method == "dys-jfb" else None,
        "bwd_iters_mean": None,
        "budget_max_epochs": 10, "budget_max_seconds": 600, "n_train": 100, "n_val": 20,
        "n_test": 20, "l2obench_version": "0.1.0", "git_commit": "0123abcd",
        "torch_version": "2.13.0", "numpy_version": "2.2.0", "python_version": "3.11.9",
        "hostname": "bench-host", "device_name": "Test CPU <model> 9000", "torch_threads": 2,
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:10:00+00:00",
        "history": [{"train_loss": 1.0, "val_regret": 0.2}],
    }


def synthetic_records() -> list[dict]:
    """Suite ``synth``: 4 sizes; two methods × 3 seeds (one timeout), one method with a single
    seed that fails at the largest size; plus a second suite ``other``, one method, one seed,
    out of memory at its largest size (no cell there gets as far as knowing ``n_vars``)."""
    records = []
    for size in SIZES:
        for seed in (0, 1, 2):
            records.append(record("synth", DYS, size, seed,
                                  "timeout" if (size, seed) == (20, 1) else "ok"))
            records.append(record("synth", TWO_STAGE, size, seed))
        records.append(record("synth", SPO, size, 0, "failed" if size == 40 else "ok"))
    records += [record("other", DYS, 5, 0), record("other", DYS, 10, 0),
                record("other", DYS, 20, 0, "oom")]
    return records


@pytest.fixture(scope="module")
def synth_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth-results")
    store = ResultStore(root)
    for rec in synthetic_records():
        store.write(Record.from_json(rec))
    return root


@pytest.fixture(scope="module")
def synth_report(synth_results: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return build_report(synth_results, tmp_path_factory.mktemp("synth-report"), suite="synth",
                        command=COMMAND)


def test_mean_interval_is_students_t() -> None:
    x = [0.11, 0.14, 0.09]
    mean, lo, hi = mean_interval(x)
    expected = stats.t.interval(0.95, df=len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(np.mean(x))
    assert (lo, hi) == pytest.approx(expected)
    one = mean_interval([0.2])
    assert one[0] == 0.2 and math.isnan(one[1]) and math.isnan(one[2])  # one seed: no interval
    assert all(math.isnan(v) for v in mean_interval([]))
    assert mean_interval([3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert mean_interval([1.0, None, float("nan"), 3.0])[0] == 2.0  # empty values are skipped


def test_aggregate_matches_a_hand_computation(synth_results: Path) -> None:
    records = load_results(synth_results)
    agg = aggregate(records).set_index(["suite", "size", "method_label"])

    cells = records[(records["suite"] == "synth") & (records["size"] == 10)
                    & (records["method_label"] == DYS)]
    for metric in ("norm_regret", "train_time_s", "peak_mem_mb", "fwd_iters_mean"):
        x = cells[metric].to_numpy(float)
        row = agg.loc[("synth", 10, DYS)]
        lo, hi = stats.t.interval(0.95, df=2, loc=x.mean(), scale=stats.sem(x))
        assert row[f"{metric}_mean"] == pytest.approx(x.mean())
        assert (row[f"{metric}_lo"], row[f"{metric}_hi"]) == pytest.approx((lo, hi))
        assert row[f"{metric}_n"] == 3

    # The timeout seed is attempted but does not enter the means.
    timed_out = agg.loc[("synth", 20, DYS)]
    ok = records[(records["suite"] == "synth") & (records["size"] == 20)
                 & (records["method_label"] == DYS) & (records["status"] == "ok")]
    assert (timed_out["solved"], timed_out["attempted"]) == (2, 3)
    assert timed_out["statuses"] == "ok 2, timeout 1"
    assert timed_out["clocked"] == 1 and agg.loc[("synth", 10, DYS)]["clocked"] == 0
    assert timed_out["epochs_mean"] == 10  # the ok seeds' epochs; the timeout's do not enter
    clocked = records.assign(stopped_by=np.where(records["size"] == 5, "seconds", "epochs"))
    assert (aggregate(clocked).set_index(["suite", "size", "method_label"])
            .loc[("synth", 5, DYS), "clocked"]) == 3  # every seed stopped by the seconds budget
    assert timed_out["norm_regret_mean"] == pytest.approx(ok["norm_regret"].mean())
    assert timed_out["norm_regret_n"] == 2

    # One seed: a mean without an interval. A failed cell: no means, but n_vars of its size.
    single = agg.loc[("synth", 10, SPO)]
    assert single["norm_regret_n"] == 1 and math.isnan(single["norm_regret_hi"])
    failed = agg.loc[("synth", 40, SPO)]
    assert (failed["solved"], failed["attempted"], failed["statuses"]) == (0, 1, "failed 1")
    assert math.isnan(failed["norm_regret_mean"])
    assert failed["n_vars"] == 2 * 40 * 39
    assert agg["bwd_iters_mean_mean"].isna().all()


def test_ranking_rule() -> None:
    size = pd.DataFrame({"method_label": ["a", "b", "c"], "norm_regret_mean": [0.1, 0.1, 0.3],
                         "train_time_s_mean": [5.0, 3.0, 1.0]})
    # Ties on regret go to the faster method; a method without an ok cell ranks last, tied.
    assert ranks(size, ["a", "b", "c", "d", "e"], "norm_regret", "train_time_s") == \
        {"b": 1, "a": 2, "c": 3, "d": 5, "e": 5}

    rows = []
    for s, regrets, times in [(1, (0.1, 0.2, 0.3), (3, 2, 1)), (2, (0.2, 0.1, None), (1, 2, 3))]:
        for method, regret, t in zip("xyz", regrets, times, strict=True):
            rows.append({"size": s, "method_label": method, "solved": int(regret is not None),
                         "attempted": 1, "norm_regret_mean": regret or math.nan,
                         "train_time_s_mean": t if regret is not None else math.nan})
    ranked = overall_ranking(pd.DataFrame(rows), DECISION.ranking())[0]
    overall = ranked.set_index("method_label")
    # x: ranks 1, 2 → 1.5; y: 2, 1 → 1.5; z: 3, 3 (missing at size 2) → 3. x and y tie on
    # regret; time ranks: x 3, 1 → 2, y 2, 2 → 2 as well, so they share the rank.
    assert overall["mean_rank"].to_dict() == {"x": 1.5, "y": 1.5, "z": 3.0}
    assert overall["rank"].to_dict() == {"x": 1, "y": 1, "z": 3}
    assert overall.loc["z", "rank@2"] == 3


def test_every_figure_is_written_as_png_and_svg(synth_report: ReportFiles) -> None:
    figures = synth_report.out / "figures"
    expected = {f"synth-shortest-path-{name}.{ext}" for name in SYNTH_FIGURES
                for ext in ("png", "svg")}
    assert {p.name for p in figures.iterdir()} == expected  # nothing empty, nothing extra
    assert {p.name for p in synth_report.figures} == expected
    for path in synth_report.figures:
        data = path.read_bytes()
        assert len(data) > 5000, path
        assert data.startswith(b"\x89PNG") if path.suffix == ".png" else b"<svg" in data[:2000]
    for path in synth_report.all():
        assert path.is_file() and path.stat().st_size > 0


def test_not_ok_cells_are_marked_in_the_figures(synth_results: Path,
                                                synth_report: ReportFiles) -> None:
    svg = (synth_report.out / "figures" / "synth-shortest-path-regret.svg").read_text()
    assert 'id="not-ok-failed"' in svg and 'id="not-ok-timeout"' in svg
    assert "failed (not ok" in svg  # the legend entry

    records = load_results(synth_results)
    records = records[records["suite"] == "synth"]
    agg = aggregate(records)
    styles = method_styles(records)
    regret = next(p for p in PLOTS if p.name == "regret")
    figure = draw(regret, regret.metrics, agg, records, styles)
    marks = {c.get_gid(): np.asarray(c.get_offsets())[:, 0].tolist()
             for c in figure.axes[0].collections
             if (c.get_gid() or "").startswith("not-ok-")}
    assert marks == {"not-ok-failed": [40.0], "not-ok-timeout": [20.0]}
    assert figure.axes[0].get_xlabel() == "problem size"  # the synthetic records lack its name
    named = draw(regret, regret.metrics, agg, records.assign(size_param="k"), styles)
    assert named.axes[0].get_xlabel() == "problem size (k)"


def test_leaderboard_pages_hold_the_tables(synth_report: ReportFiles) -> None:
    md = synth_report.leaderboard.read_text()
    html = synth_report.index.read_text()
    for page in (md, html):
        assert "Overall ranking" in page and "Provenance" in page
        for size, n_vars in [(5, 40), (10, 180), (20, 760), (40, 3120)]:
            assert f"Size {size} ({n_vars} decision variables)" in page
        assert "ok 2, timeout 1, 1 ended by the clock" in page  # a timeout is a clock's end
        assert "2/3" in page and "(1 seed)" not in page
        assert "0123abcd" in page and "2.13.0" in page and "3.11.9" in page
        assert "other (shortest-path)" not in page  # only the suite asked for
        assert AGGREGATION_NOTE in page and ranking_rule(DECISION) in page
    assert "| 3 | spo-plus | — | — |" in md and "| 0/1 | failed 1 |" in md
    assert "|\n\n|" not in md  # a blank line would end a Markdown table
    assert "| rank | method | normalized regret |" in md
    assert '<td class="name"><span class="seg">spo-plus</span></td>' in html
    assert '<td class="num">0/1</td><td>failed 1</td>' in html
    assert "![Regret and training time](figures/synth-shortest-path-summary.png)" in md


def test_html_is_escaped_and_requests_nothing(synth_report: ReportFiles) -> None:
    html = synth_report.index.read_text()
    assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "Test CPU &lt;model&gt; 9000" in html
    assert "--out &lt;out&gt; &amp; more" in html  # the command, escaped
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    assert "http://" not in html and "https://" not in html

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links: list[tuple[str, str]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.links += [(tag, v or "") for k, v in attrs
                           if k in ("src", "href", "srcset", "poster", "data", "action")]

    parser = Links()
    parser.feed(html)
    images = [v for tag, v in parser.links if tag == "img"]
    assert len(images) == len(SYNTH_FIGURES)
    for tag, link in parser.links:
        if link.startswith("data:"):
            continue
        assert ":" not in link and not link.startswith("/"), (tag, link)  # relative paths only
        assert (synth_report.out / link).is_file(), link


@pytest.mark.slow
def test_all_suites_without_a_filter(synth_results: Path, tmp_path: Path) -> None:
    files = build_report(synth_results, tmp_path)
    html = files.index.read_text()
    assert "<h2>other (shortest-path)</h2>" in html and "<h2>synth (shortest-path)</h2>" in html
    assert "<h4>Size 20 (decision variables unknown)</h4>" in html
    svg = (tmp_path / "figures" / "other-shortest-path-regret.svg").read_text()
    assert 'id="not-ok-oom"' in svg
    assert set(pd.read_csv(files.aggregates)["suite"]) == {"other", "synth"}


def test_errors_name_what_is_there(synth_results: Path, tmp_path: Path) -> None:
    with pytest.raises(L2OBenchError, match=r"no records of suite 'nope'.*other, synth"):
        build_report(synth_results, tmp_path / "out", suite="nope")
    (tmp_path / "empty" / "records").mkdir(parents=True)
    with pytest.raises(L2OBenchError, match="nothing to report: no records under"):
        build_report(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(L2OBenchError, match="nothing to report: no results folder"):
        build_report(tmp_path / "missing", tmp_path / "out")


def test_publish_dir_is_the_checkouts_results_folder() -> None:
    assert publish_dir("shortest-path") == REPO / "results" / "shortest-path"
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(L2OBenchError, match="cannot publish"):
            publish_dir(bad)


TINY = tiny_suite("tiny-report", seeds="[0, 1]")


@pytest.mark.slow
def test_report_of_a_real_tiny_run(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY)
    results = tmp_path / "results"
    run = run_cli("run", "--suite", str(suite), "--device", "cpu", "--out", str(results))
    assert run.returncode == 0, run.stdout + run.stderr

    # The whole report as a user runs it: interpreter, imports, figures and pages.
    out = tmp_path / "report"
    script = ("import sys; from l2obench.report import build_report; "
              "build_report(sys.argv[1], sys.argv[2], suite='tiny-report', command='x')")
    start = time.perf_counter()
    made = subprocess.run([sys.executable, "-c", script, str(results), str(out)],
                          capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert made.returncode == 0, made.stderr
    assert seconds < 30, f"the report took {seconds:.1f} s"

    names = {p.name for p in (out / "figures").iterdir()}
    # Real records carry timed histories: the anytime figure joins the synthetic ones.
    assert names == {f"tiny-report-shortest-path-{n}.{ext}" for n in (*SYNTH_FIGURES, "anytime")
                     for ext in ("png", "svg")}
    md = (out / "LEADERBOARD.md").read_text()
    for size, n_vars in [(3, 12), (4, 24)]:
        assert f"Size {size} ({n_vars} decision variables)" in md
    # Two methods × two sizes, both seeds ok (‡ where the machine was busier than its cores).
    assert len(re.findall(r"\| 2/2 \| ok 2( ‡)? \|", md)) == 4
    assert "machine load:** not recorded" not in md  # a real run records it
    assert "dys-jfb\\[lr=0.01,max\\_iter=500\\]" in md and "| two-stage |" in md
    assert "device: CPU/GPU model:** cpu: " in md


def test_results_come_first_then_the_rules_and_the_notes_folded(synth_results: Path,
                                                                 tmp_path: Path) -> None:
    notes = ("**Regenerated** with `--threads 1`: a faster <projection>.\n\n"
             "- first bullet\n  continued\n- second & last, [PyEPO](https://example.org)\n\n"
             "<script>alert(1)</script> ![x](https://example.org/x.png)\n")
    files = build_report(synth_results, tmp_path, suite="synth", notes=notes)
    md = files.leaderboard.read_text()
    order = ["figures/synth-shortest-path-summary.png", "### Overall ranking", "<details>",
             AGGREGATION_NOTE[:30], "</details>", "<details>", "**Regenerated** with",
             "</details>", "### Per size"]
    at = 0
    for piece in order:  # the notes as written, inside the second fold
        at = md.index(piece, at) + 1
    html = files.index.read_text()
    folds = html.split("<details")
    assert "Overall ranking" in folds[0] and "<img" in folds[0]  # the summary figure
    assert AGGREGATION_NOTE[:30] in folds[1] and "Regenerated" in folds[2]
    assert "<strong>Regenerated</strong> with <code>--threads 1</code>" in html
    assert "a faster &lt;projection&gt;." in html
    assert "<li>first bullet\ncontinued</li>" in html and "second &amp; last" in html
    assert '<a href="https://example.org">PyEPO</a>' in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in folds[2].split("</details>")[0]  # nothing requested from elsewhere


def test_cli_notes_file_must_exist(synth_results: Path, tmp_path: Path) -> None:
    run = run_cli("report", "--results", str(synth_results), "--out", str(tmp_path / "r"),
                  "--notes", str(tmp_path / "missing.md"))
    assert run.returncode == 2 and "cannot read the notes file" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


def test_tables_are_exported_as_csv_and_latex(synth_report: ReportFiles) -> None:
    tables = {p.name: p for p in synth_report.tables}
    assert "synth-shortest-path-overall.csv" in tables
    assert "synth-shortest-path-overall.tex" in tables
    assert "synth-shortest-path-size-5.tex" in tables
    rows = tables["synth-shortest-path-size-5.csv"].read_text().splitlines()
    assert rows[0].startswith("rank,method,normalized regret")
    tex = tables["synth-shortest-path-size-5.tex"].read_text()
    assert tex.startswith(r"\begin{tabular}{rl") and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"$\pm$" in tex and "dys-jfb[lr=0.01]" in tex


def test_latex_cells_are_escaped() -> None:
    from l2obench.report.export import latex_cell

    assert latex_cell("a_b & 50% $x$ #1 {y}") == r"a\_b \& 50\% \$x\$ \#1 \{y\}"
    assert latex_cell("**0.12 ± 0.01**") == r"\textbf{0.12 $\pm$ 0.01}"


def test_test_losses_are_drawn_one_panel_per_shared_objective(synth_results: Path) -> None:
    records = load_results(synth_results)
    records = records[records["suite"] == "synth"].copy()
    records.loc[records["method"] == "spo-plus", "objective"] = "MSE to x*"  # shares dys-jfb's
    agg = aggregate(records)
    test_loss = next(p for p in PLOTS if p.name == "test_loss")
    figure = draw(test_loss, test_loss.metrics, agg, records, method_styles(records))
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == ["objective: MSE to x*"]
    lines = {line.get_label() for ax in figure.axes for line in ax.get_lines()}
    assert lines == {DYS, SPO}  # two-stage's MSE on costs is not on this scale


def test_methods_are_grouped_by_family_and_seeds_shown_as_points(synth_results: Path) -> None:
    from l2obench.report.style import FAMILIES

    records = load_results(synth_results)
    styles = method_styles(records)
    assert styles[DYS].family == "dys" and styles[TWO_STAGE].family == "baseline"
    assert styles[SPO].family == "pyepo"  # older records: the family from the method's name
    assert len({(s.colour, s.marker, s.hollow, s.linestyle) for s in styles.values()}) == 3
    assert list(FAMILIES)[:4] == ["dys", "layer", "pyepo", "baseline"]
    agg = aggregate(records[records["suite"] == "synth"])
    regret = next(p for p in PLOTS if p.name == "regret")
    figure = draw(regret, regret.metrics, agg, records[records["suite"] == "synth"], styles)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend.index("DYS LAYERS") < legend.index(DYS) < legend.index("BASELINES")
    assert "one seed (fewer than 3)" in legend  # spo-plus has one seed: points, not a band


def test_report_compares_each_method_with_a_baseline(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    now, then = ResultStore(tmp_path / "now"), ResultStore(tmp_path / "then")
    for row in synthetic_records():
        if row["suite"] != "synth" or row["status"] != "ok":
            continue
        regrets = rng.uniform(0.0, 1.0, 30)
        shift = 0.2 if row["method"] == "dys-jfb" else 0.0  # dys-jfb got better since
        # norm_regret = Σ test_regrets / Σ|c x*| with one Σ|c x*| (30) at every data point, as
        # a run's records have (a record whose mean disagrees is damaged)
        now.write(Record.from_json({**row, "norm_regret": regrets.sum() / 30,
                                    "test_regrets": regrets.tolist()}))
        then.write(Record.from_json({**row, "norm_regret": (regrets + shift).sum() / 30,
                                     "test_regrets": (regrets + shift).tolist()}))
    files = build_report(tmp_path / "now", tmp_path / "r", baseline=tmp_path / "then")
    md = files.leaderboard.read_text()
    assert "Change against the baseline" in md and str(tmp_path / "then") in md
    rows = [line for line in md.splitlines() if line.startswith("| 5 |") and "better" in line]
    assert any("dys-jfb" in line for line in rows)
    assert "| no significant change |" in md  # two-stage's regrets are the same
    assert any(p.name.endswith("-baseline.tex") for p in files.tables)
    with pytest.raises(L2OBenchError, match="--baseline"):
        build_report(tmp_path / "now", tmp_path / "r2", baseline=tmp_path / "missing")


def test_the_anytime_curve_only_moves_forward_when_seeds_stop_at_different_epochs() -> None:
    """A seed stopped by the seconds budget after fewer epochs keeps its clock and kept score in
    the later epochs' means: averaging only the seeds still running would make the curve jump
    back in time and score when the slow, good seed drops out."""
    from l2obench.report.anytime import curve

    accuracy = get_task("classification").validation
    fast = [{"epoch": e, "train_s": float(e), "val_score": v}
            for e, v in enumerate([0.2, 0.5, 0.4, 0.6], start=1)]
    slow = [{"epoch": e, "train_s": 10.0 * e, "val_score": v}
            for e, v in enumerate([0.3, 0.9], start=1)]
    seconds, score = curve([fast, slow], accuracy)
    assert seconds.tolist() == [5.5, 11.0, 11.5, 12.0]
    assert score.tolist() == pytest.approx([0.25, 0.7, 0.7, 0.75])  # best so far: .5 held at 3
    assert np.all(np.diff(seconds) >= 0) and np.all(np.diff(score) >= 0)


def test_rankings_per_roster() -> None:
    """A method the suite runs only at some sizes is ranked where it ran, not last elsewhere:
    one ranking of every method over the sizes where all ran, one of the panel over all."""
    rows = []
    regrets = {1: {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.05},
               2: {"a": 0.2, "b": 0.1, "c": 0.3, "d": 0.04},
               3: {"a": 0.3, "b": 0.1, "c": 0.2}}  # d is not run at size 3
    for size, by_method in regrets.items():
        for method, regret in by_method.items():
            rows.append({"suite": "s", "problem": "p", "size": size, "method_label": method,
                         "solved": 1, "attempted": 1, "norm_regret_mean": regret,
                         "train_time_s_mean": 1.0})
    agg = pd.DataFrame(rows)
    assert rosters(agg) == [(["a", "b", "c", "d"], [("", 1), ("", 2)]),
                            (["a", "b", "c"], [("", 1), ("", 2), ("", 3)])]
    every, panel = overall_rankings(agg, DECISION.ranking())
    assert every.title == "4 methods recorded at sizes 1, 2" and every.stem == "overall"
    assert [row[1] for row in every.table.rows] == ["d", "a", "b", "c"]  # d: 1, 1
    assert panel.title == "3 methods recorded at every size (1, 2, 3)"
    assert panel.stem == "overall-2"
    # a: 1, 2, 3 → 2; b: 2, 1, 1 → 1.33; c: 3, 3, 2 → 2.67; d never ranked last at size 3.
    assert [row[:3] for row in panel.table.rows] == [["1", "b", "1.33"], ["2", "a", "2.00"],
                                                     ["3", "c", "2.67"]]
    # Everyone everywhere: one ranking, untitled.
    (only,) = overall_rankings(agg[agg["size"] < 3], DECISION.ranking())
    assert only.title == "" and len(only.table.rows) == 4


def test_a_panel_at_the_largest_size_is_ranked_where_it_ran(tmp_path: Path) -> None:
    """spo-plus is not run at size 20: the size-20 table leaves it out and says so, and the
    pages show two rankings (both methods at 5, 10, 20; all three at 5, 10) with their files."""
    store = ResultStore(tmp_path / "results")
    for size in (5, 10, 20):
        for seed in (0, 1):
            for method in (DYS, TWO_STAGE) + ((SPO,) if size < 20 else ()):
                store.write(Record.from_json(record("panel", method, size, seed)))
    files = build_report(tmp_path / "results", tmp_path / "out", suite="panel")
    md, html = files.leaderboard.read_text(), files.index.read_text()
    for page in (md, html):
        assert "3 methods recorded at sizes 5, 10" in page
        assert "2 methods recorded at every size (5, 10, 20)" in page
        assert "Not recorded at this size: spo-plus." in page
    size_20 = md.split("#### Size 20")[1]
    assert "| spo-plus |" not in size_20.split("Not recorded")[0]
    tables = {p.name for p in files.tables}
    assert {"panel-shortest-path-overall.csv", "panel-shortest-path-overall-2.csv"} <= tables
