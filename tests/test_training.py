"""The training loop's clock: training seconds without validation, the kept epoch's figures."""

from __future__ import annotations

import pytest
import torch

from l2obench.record import Budget, selected_val_regret
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
    fit = run_epochs(step, 4, validate, Budget(max_epochs=5), batch_size=2, seed=0,
                     snapshot=lambda: len(kept), restore=kept.append, clock=lambda: now[0])
    assert [h["train_s"] for h in fit.history] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert [h["val_s"] for h in fit.history] == [10.0] * 5
    assert [h["val_regret"] for h in fit.history] == [0.5, 0.3, 0.4, 0.2, 0.25]
    assert (fit.best_epoch, fit.val_regret, fit.time_to_best_s) == (4, 0.2, 8.0)
    assert fit.val_time_s == 50.0
    assert set(fit.history[0]) == {"epoch", "train_loss", "val_regret", "train_s", "val_s"}


def test_the_kept_epochs_validation_regret_of_old_and_new_records() -> None:
    old = [{"epoch": 1, "train_loss": 1.0, "val_score": 0.4},
           {"epoch": 2, "train_loss": 0.5, "val_score": 0.3}]
    assert selected_val_regret(None, 2, old) == 0.3  # from the history, as older records hold it
    assert selected_val_regret(0.1, 2, old) == 0.1  # the column wins
    assert selected_val_regret(None, None, old) is None
    assert selected_val_regret(None, 3, old) is None
    assert selected_val_regret(float("nan"), 2, None) is None


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
    best = fit.history[fit.best_epoch - 1]
    assert fit.time_to_best_s == best["train_s"] and fit.val_regret == best["val_regret"]
    assert fit.val_time_s == pytest.approx(sum(h["val_s"] for h in fit.history))
