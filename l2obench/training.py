"""The one PyTorch training loop: mini-batch Adam within a budget, model selection on validation.

Every PyTorch method trains through :func:`train`; it differs from another only in its batch loss.
The loop stops when the epoch or the seconds budget runs out (checked after every batch, so a
slow method cannot overrun by more than one batch), keeps the parameters of the epoch with the
best validation score and restores them at the end.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from l2obench.methods.base import Budget

log = logging.getLogger(__name__)

BatchLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or validation score."""


@dataclass
class TrainingRun:
    """What the loop did: completed epochs, the selected epoch, why it stopped, per-epoch log."""

    epochs: int = 0
    best_epoch: int | None = None
    stopped_by: str = "epochs"
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    model: nn.Module,
    batch_loss: BatchLoss,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    validate: Callable[[], float],
    budget: Budget,
    *,
    lr: float,
    batch_size: int,
    seed: int,
) -> TrainingRun:
    """Train ``model`` on ``data = (features, costs, solutions)`` (tensors on the model's device).

    ``validate`` returns a score to minimise (validation regret); the best epoch's parameters
    are restored before returning.
    """
    features, costs, solutions = data
    n = features.shape[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    run = TrainingRun()
    best_score, best_state = math.inf, None
    start = time.perf_counter()
    max_epochs = budget.max_epochs if budget.max_epochs is not None else math.inf

    while run.epochs < max_epochs:
        order = torch.randperm(n, generator=generator).to(features.device)
        total, out_of_time = 0.0, False
        model.train()
        for first in range(0, n, batch_size):
            idx = order[first : first + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = batch_loss(features[idx], costs[idx], solutions[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
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
        score = _validate(model, validate)
        run.history.append({"epoch": run.epochs, "train_loss": train_loss, "val_score": score})
        log.debug("epoch %d: train loss %.5g, validation %.5g", run.epochs, train_loss, score)
        if score < best_score:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
            run.best_epoch = run.epochs
        if budget.max_seconds is not None and time.perf_counter() - start > budget.max_seconds:
            run.stopped_by = "seconds" if run.epochs < max_epochs else "epochs"
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return run


def _validate(model: nn.Module, validate: Callable[[], float]) -> float:
    model.eval()
    with torch.no_grad():
        score = float(validate())
    if not math.isfinite(score):
        raise DivergenceError(f"validation score is {score}")
    return score
