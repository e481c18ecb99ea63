"""The task seam: a family of its own (``tests/denoise_family``, registered in this process)
runs, is scored, selected, reported and ranked by its own metric and direction, with nothing
outside its package naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

from l2obench.errors import L2OBenchError
from l2obench.store import load_records, load_results
from l2obench.tasks.base import Metric, Scores, Task, get_task, task_of, task_registry
from tests.conftest import run_main
from tests.denoise_family.task import DenoiseSplit, DenoiseTask

#: The test family registered for this module's tests.
pytestmark = pytest.mark.usefixtures("denoise_family")


SUITE = """
name = "denoise-toy"
problem = "noisy-signals"
sizes = [8, 16]
seeds = [0, 1]
data = { n_train = 128, n_val = 32, n_test = 32, noise = 0.3 }
budget = { max_epochs = 15 }

[tuning]
rule = "per-size"

[[methods]]
name = "denoise-identity"

[[methods]]
name = "denoise-ridge"

[[methods]]
name = "denoise-linear"
params = { lr = [0.03, 0.00001] }
tune = ["lr"]
"""


def test_the_denoising_scores_are_scikit_images() -> None:
    rng = np.random.default_rng(0)
    targets = rng.uniform(0, 1, (5, 12)).astype(np.float32)
    outputs = targets + 0.1 * rng.standard_normal(targets.shape)
    scores = DenoiseTask().score(None, DenoiseSplit(targets, targets), outputs)
    psnr = [peak_signal_noise_ratio(t.astype(np.float64), o, data_range=1.0)
            for t, o in zip(targets, outputs, strict=True)]
    mse = [mean_squared_error(t.astype(np.float64), o) for t, o in zip(targets, outputs,
                                                                        strict=True)]
    assert scores.per_instance["test_psnr"] == pytest.approx(psnr, rel=1e-12)
    assert scores.values == pytest.approx({"psnr": np.mean(psnr), "mse": np.mean(mse)})
    with pytest.raises(ValueError, match="shape"):
        DenoiseTask().score(None, DenoiseSplit(targets, targets), outputs[:, :3])
    with pytest.raises(FloatingPointError):
        DenoiseTask().score(None, DenoiseSplit(targets, targets), outputs * np.nan)


@pytest.mark.parametrize("name", sorted({*task_registry.names(), "denoise"}))
def test_every_task_family_declares_its_metrics_consistently(name: str) -> None:
    task = get_task(name)  # checks the declaration
    assert task.ranking().name == task.rank_metric
    assert task.validation.direction == task.ranking().direction
    assert task.rank_metric in task.summary() and task.output


def test_a_contradictory_declaration_is_refused() -> None:
    class Bad(Task):
        metrics = (Metric("score", "score", "max"),)
        rank_metric = "score"
        validation = Metric("val_score_x", "validation score", "min")

        def score(self, problem: object, split: object, outputs: np.ndarray) -> Scores:
            return Scores({})

    with pytest.raises(L2OBenchError, match="direction"):
        Bad.check_declaration()
    Bad.validation = Metric("epochs", "epochs", "max")  # a record column's name
    with pytest.raises(L2OBenchError, match="record columns"):
        Bad.check_declaration()
    Bad.validation = Metric("val_score_x", "validation score", "max")
    Bad.check_declaration()
    Bad.drawn = ("scor",)  # a figure of a metric the task does not have
    with pytest.raises(L2OBenchError, match="drawn"):
        Bad.check_declaration()
    with pytest.raises(ValueError, match="direction"):
        Metric("m", "m", "up")  # type: ignore[arg-type]


def test_cells_of_two_families_do_not_compare() -> None:
    with pytest.raises(L2OBenchError, match="span task families decision, denoise"):
        task_of(["decision", "denoise", None])
    assert task_of([None, ""]).name == "decision"  # records without a family: the default


def test_a_method_of_another_family_is_refused(tmp_path: Path) -> None:
    suite = tmp_path / "mixed.toml"
    suite.write_text(SUITE.replace('name = "denoise-identity"', 'name = "two-stage"'))
    code, text = run_main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"),
                           "--executor", "inline", "--device", "cpu"])
    assert code == 2
    assert "serves task family 'decision'" in text and "of family 'denoise'" in text


@pytest.mark.slow
def test_a_family_of_its_own_runs_selects_reports_and_ranks(tmp_path: Path) -> None:
    suite, out, pages = tmp_path / "toy.toml", tmp_path / "out", tmp_path / "pages"
    suite.write_text(SUITE)
    code, text = run_main(["run", "--suite", str(suite), "--out", str(out), "--executor",
                           "inline", "--device", "cpu"])
    assert code == 0, text
    assert "PSNR" in text and "val PSNR" in text  # the summary's columns are the family's
    records = load_records(out)
    assert len(records) == 16 and all(r.status == "ok" and r.task == "denoise" for r in records)
    linear = [r for r in records if r.method == "denoise-linear"]
    assert all(set(r.metrics or {}) == {"psnr", "mse", "val_psnr"} for r in linear)
    assert all(len((r.per_instance or {})["test_psnr"]) == 32 for r in records)
    ridge = [r for r in records if r.method == "denoise-ridge"]
    conditions = [(r.extras or {})["gram_condition"] for r in ridge]  # a declared extra
    assert all(c is not None and c >= 1.0 for c in conditions)
    # The training loop kept the epoch of highest validation PSNR.
    for r in linear:
        scores = [h["val_score"] for h in r.history or []]
        assert r.metric("val_psnr") == max(scores) == scores[(r.best_epoch or 0) - 1]

    frame = load_results(out)
    assert {"psnr", "mse", "val_psnr", "test_psnr", "gram_condition"} <= set(frame.columns)
    code, text = run_main(["report", "--results", str(out), "--suite", "denoise-toy",
                           "--out", str(pages)])
    assert code == 0, text
    page = (pages / "LEADERBOARD.md").read_text()
    assert "PSNR (dB)" in page and "higher is better" in page
    assert "highest mean validation PSNR" in page  # the tuning rule, in the family's words
    assert "samples per signal" in page and "Gram condition number" in page
    stem = "denoise-toy-noisy-signals"
    assert {p.name for p in (pages / "figures").iterdir()} >= {
        f"{stem}-summary.png", f"{stem}-psnr.png", f"{stem}-anytime.png"}
    # Ranked by mean PSNR, highest first: the observation itself (lowest PSNR) is last.
    psnr = frame.groupby(["size", "method"])["psnr"].mean()
    for size in (8, 16):
        assert psnr[size, "denoise-identity"] < psnr[size, "denoise-ridge"]
    overall = page.split("### Overall ranking")[1].split("Friedman")[0]
    ranked = [line.split("|")[2] for line in overall.splitlines() if line.startswith("| ")
              and line.split("|")[1].strip().isdigit()]
    assert len(ranked) == 3 and "denoise-identity" in ranked[-1]
    # The tuned method is represented by its configuration of highest mean validation PSNR.
    val = frame[frame["method"] == "denoise-linear"].groupby(["size", "method_label"])[
        "val_psnr"].mean()
    for size in (8, 16):
        config = val[size].idxmax().split("[")[1].rstrip("]")
        assert f"| denoise-linear | {size} | {config} | highest mean validation PSNR" in page


@pytest.mark.slow  # imports every method
def test_list_shows_each_family_with_its_metrics_and_directions() -> None:
    code, text = run_main(["list"])
    assert code == 0, text
    families = text.split("Task families")[1].split("Problems")[0]
    assert "decision" in families and "norm_regret ↓" in families and "accuracy ↑" in families
    assert "denoise" in families and "psnr ↑ (dB)" in families and "val_psnr ↑" in families
    assert "noisy-signals" in text and "denoise-ridge" in text
