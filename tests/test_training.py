"""The training loop's clock: training seconds without validation, the kept epoch's figures."""

from __future__ import annotations

import pytest
import torch

from l2obench.record import Budget, Record
from l2obench.training import run_epochs


def test_history_clocks_training_apart_from_validation() -> None:
    now = [100.0]  # a fake clock: each step costs 1 s, each validation 10 s
    regrets = iter([0.5, 0.3, 0.4, 0.2, 0.25])

    def step(idx: torch.Tensor) -> float:
        now[0] += 1.0
        return 1.0

    def validate() -> float:
        now[0] += 10.0
        return next(regrets)

    kept: list[int] = []
    fit = run_epochs(step, 4, validate, Budget(max_epochs=5), direction="min", batch_size=2,
                     seed=0, snapshot=lambda: len(kept), restore=kept.append,
                     clock=lambda: now[0])
    assert [h["train_s"] for h in fit.history] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert [h["val_s"] for h in fit.history] == [10.0] * 5
    assert [h["val_score"] for h in fit.history] == [0.5, 0.3, 0.4, 0.2, 0.25]
    assert (fit.best_epoch, fit.val_score, fit.time_to_best_s) == (4, 0.2, 8.0)
    assert fit.val_time_s == 50.0
    assert set(fit.history[0]) == {"epoch", "train_loss", "val_score", "train_s", "val_s"}


def test_a_higher_is_better_score_keeps_the_highest_epoch() -> None:
    scores = iter([0.5, 0.3, 0.9, 0.2])
    kept: list[int] = []
    fit = run_epochs(lambda idx: 1.0, 4, lambda: next(scores), Budget(max_epochs=4),
                     direction="max", batch_size=4, seed=0, snapshot=lambda: len(kept),
                     restore=kept.append)
    assert (fit.best_epoch, fit.val_score) == (3, 0.9)


def test_the_kept_epochs_validation_regret_of_old_records() -> None:
    """Records written before the task seam hold the validation regret in a column or, older
    still, only in the history entry of the kept epoch; both migrate into the metrics map."""
    old = [{"epoch": 1, "train_loss": 1.0, "val_score": 0.4},
           {"epoch": 2, "train_loss": 0.5, "val_score": 0.3}]

    def val(**columns: object) -> float | None:
        base = {"cell_id": "0" * 16, "status": "ok", "problem": "p", "method": "m",
                "norm_regret": 0.2}  # an ok record has its test scores
        return Record.from_json({**base, **columns}).metric("val_regret")

    assert val(best_epoch=2, history=old) == 0.3  # from the history, as older records hold it
    assert val(val_regret=0.1, best_epoch=2, history=old) == 0.1  # the column wins
    assert val(history=old) is None
    assert val(best_epoch=3, history=old) is None
    assert val(val_regret=None, best_epoch=2) is None


def test_torch_training_records_the_clock() -> None:
    from l2obench.methods.two_stage import TwoStage
    from l2obench.problems.shortest_path import ShortestPath

    problem = ShortestPath(k=3, n_train=40, n_val=16, n_test=16, seed=0)
    data = problem.generate()
    method = TwoStage(problem, torch.device("cpu"), 0, batch_size=8)
    fit = method.fit(data, Budget(max_epochs=3))
    train_s = [h["train_s"] for h in fit.history]
    assert len(train_s) == 3 and 0 < train_s[0] < train_s[1] < train_s[2]
    assert all(h["val_s"] > 0 for h in fit.history)
    assert fit.best_epoch is not None
    best = fit.history[fit.best_epoch - 1]
    assert fit.time_to_best_s == best["train_s"] and fit.val_score == best["val_score"]
    assert fit.val_time_s == pytest.approx(sum(h["val_s"] for h in fit.history))
