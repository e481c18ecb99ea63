"""The one training loop: mini-batches within a budget, model selection on validation.

:func:`run_epochs` owns what every method's training shares, whatever its framework: the
mini-batch order, the epoch and seconds budget (checked after every batch, so a slow method
cannot overrun by more than one batch), divergence detection, keeping the parameters of the
epoch with the best validation score (restored at the end; the task family's validation metric,
lower or higher is better by its direction), and the clock of each epoch: the history records,
per completed epoch, the cumulative training seconds (validation excluded) and that epoch's
validation seconds, so a report can draw the validation score against training time.
Every PyTorch method trains through :func:`train` (Adam on its batch loss, on top of
:func:`run_epochs`) and differs from another only in its batch loss; methods in other frameworks
(``dys-jfb-jax``) call :func:`run_epochs` with their own optimiser step.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from l2obench.measure import now
from l2obench.record import Budget, FitResult
from l2obench.tasks.base import Direction

log = logging.getLogger(__name__)

#: A mini-batch's loss from the rows of the training tensors that :func:`train` was given
#: (features, costs, solutions, and whatever a method adds after them), in that order.
BatchLoss = Callable[..., torch.Tensor]
#: A clock in seconds that has waited for the device's queued work (``measure.now``).
Clock = Callable[[], float]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or validation score."""


def train(
    model: nn.Module,
    batch_loss: BatchLoss,
    data: tuple[torch.Tensor, ...],
    validate: Callable[[], float],
    budget: Budget,
    *,
    direction: Direction,
    lr: float,
    batch_size: int,
    seed: int,
) -> FitResult:
    """Train ``model`` on ``data = (features, costs, solutions, …)`` (tensors on the model's
    device, one row per training instance); ``batch_loss`` gets each tensor's rows of the batch.

    ``validate`` returns the validation score (better in ``direction``), computed in eval mode
    without a tape; the best epoch's parameters are restored before returning. The epochs are
    timed with a clock that synchronises the model's device before it is read.
    """
    features = data[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(idx: torch.Tensor) -> float:
        idx = idx.to(features.device)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(*(tensor[idx] for tensor in data))
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def validate_eval() -> float:
        model.eval()
        with torch.no_grad():
            return validate()

    run = run_epochs(
        step,
        features.shape[0],
        validate_eval,
        budget,
        direction=direction,
        batch_size=batch_size,
        seed=seed,
        snapshot=lambda: copy.deepcopy(model.state_dict()),
        restore=model.load_state_dict,
        clock=lambda: now(features.device),
    )
    model.eval()
    return run


def run_epochs(
    step: Callable[[torch.Tensor], float],
    n: int,
    validate: Callable[[], float],
    budget: Budget,
    *,
    direction: Direction,
    batch_size: int,
    seed: int,
    snapshot: Callable[[], Any],
    restore: Callable[[Any], Any],
    clock: Clock = time.perf_counter,
) -> FitResult:
    """Epochs over ``n`` training instances until ``budget`` runs out; keep the best epoch.

    Each epoch draws a permutation of ``range(n)`` from a CPU ``torch.Generator`` seeded with
    ``seed``, so methods in any framework see the same mini-batches in the same order for the
    same seed, and calls ``step(idx)`` on its consecutive slices of ``batch_size`` (``idx`` a CPU
    int64 tensor): ``step`` takes one optimiser step and returns the batch's mean loss. After each
    complete epoch ``validate()`` returns the validation score (``direction`` ``"min"``: lower
    is better, ``"max"``: higher); when it improves, ``snapshot()`` is kept, and the best one is
    handed to ``restore`` before returning. An epoch cut short by the seconds budget does not
    count and is not validated.

    ``clock`` is read before and after each validation; it must have waited for the device's
    queued work (``lambda: measure.now(device)``; the default suits a step that returns a host
    float, which has waited already). Each history entry holds ``epoch``, ``train_loss``,
    ``val_score``, ``train_s`` (training seconds from the start to the end of this epoch,
    every validation excluded) and ``val_s`` (this epoch's validation seconds). The seconds
    budget still counts the whole wall time of the loop, validation included.
    """
    generator = torch.Generator().manual_seed(seed)
    run = FitResult(epochs=0)
    sign = 1.0 if direction == "min" else -1.0  # sign · score is lower when better
    best, best_state = math.inf, None
    start = time.perf_counter()
    clock_start = clock()
    validating = 0.0  # seconds spent in validate() so far
    max_epochs = budget.max_epochs if budget.max_epochs is not None else math.inf

    while run.epochs < max_epochs:
        order = torch.randperm(n, generator=generator)
        total, out_of_time = 0.0, False
        for first in range(0, n, batch_size):
            idx = order[first : first + batch_size]
            total += step(idx) * idx.numel()
            if budget.max_seconds is not None and time.perf_counter() - start > budget.max_seconds:
                out_of_time = first + batch_size < n
                break
        if out_of_time:
            run.stopped_by = "seconds"
            break
        run.epochs += 1
        train_loss = total / n
        if not math.isfinite(train_loss):
            raise DivergenceError(f"training loss is {train_loss} at epoch {run.epochs}")
        before = clock()
        score = float(validate())
        after = clock()
        if not math.isfinite(score):
            raise DivergenceError(f"validation score is {score}")
        train_s = before - clock_start - validating
        validating += after - before
        run.history.append({"epoch": run.epochs, "train_loss": train_loss, "val_score": score,
                            "train_s": train_s, "val_s": after - before})
        log.debug("epoch %d: train loss %.5g, validation score %.5g", run.epochs, train_loss,
                  score)
        if sign * score < best:
            best, best_state = sign * score, snapshot()
            run.best_epoch, run.val_score, run.time_to_best_s = run.epochs, score, train_s
        if budget.max_seconds is not None and time.perf_counter() - start > budget.max_seconds:
            run.stopped_by = "seconds" if run.epochs < max_epochs else "epochs"
            break

    run.val_time_s = validating
    if best_state is not None:
        restore(best_state)
    return run
