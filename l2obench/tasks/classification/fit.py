"""Training an implicit classifier: Adam on the cross-entropy, model selection on a validation
score, the solves' statistics for the record.

The epochs, the seeded mini-batch order, the seconds budget, the clock and the keeping of the
best epoch are :func:`l2obench.training.run_epochs`'s; the validation score is the caller's (the
task family's validation accuracy, through ``BaseMethod.validation_score``). Forward iterations
are counted per training instance and step; the adjoint's (``jacobian`` mode) per step, with the
steps whose solve missed its tolerance counted in ``bwd_unconverged``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.measure import now
from l2obench.record import Budget, FitResult
from l2obench.tasks.base import Direction
from l2obench.tasks.classification.network import ImplicitClassifier
from l2obench.tasks.classification.splits import LabelledSplit
from l2obench.training import run_epochs


def predict_logits(model: ImplicitClassifier, x: np.ndarray, *, batch_size: int,
                   device: torch.device) -> np.ndarray:
    """Class scores ``[N, K]`` of inputs ``x[N, ...]``, in evaluation mode without a tape."""
    model.eval()
    dtype = next(model.parameters()).dtype
    out = []
    with torch.no_grad():
        for first in range(0, x.shape[0], batch_size):
            d = torch.as_tensor(x[first : first + batch_size], dtype=dtype, device=device)
            out.append(model(d)[0].cpu().numpy())
    return np.concatenate(out)


class _SolveCounts:
    """Running totals of the solves' statistics over training."""

    def __init__(self) -> None:
        self.fwd_sum = 0
        self.fwd_count = 0
        self.fwd_max = 0
        self.fwd_unconverged = 0
        self.bwd_sum = 0
        self.bwd_steps = 0
        self.bwd_unconverged = 0

    def add_forward(self, iterations: torch.Tensor, converged: torch.Tensor) -> None:
        self.fwd_sum += int(iterations.sum())
        self.fwd_count += iterations.numel()
        self.fwd_max = max(self.fwd_max, int(iterations.max()))
        self.fwd_unconverged += int((~converged).sum())

    def add_backward(self, iterations: int | None, converged: bool | None) -> None:
        if iterations is None:
            return
        self.bwd_sum += iterations
        self.bwd_steps += 1
        self.bwd_unconverged += int(converged is False)

    def fill(self, run: FitResult) -> None:
        if self.fwd_count:
            run.fwd_iters_mean = self.fwd_sum / self.fwd_count
            run.fwd_iters_max = self.fwd_max
            run.fwd_unconverged = self.fwd_unconverged
        if self.bwd_steps:
            run.bwd_iters_mean = self.bwd_sum / self.bwd_steps
            run.bwd_unconverged = self.bwd_unconverged


def fit_classifier(model: ImplicitClassifier, train: LabelledSplit, budget: Budget, *,
                   validate: Callable[[], float], direction: Direction, lr: float,
                   batch_size: int, seed: int, device: torch.device) -> FitResult:
    """Train ``model`` (already on ``device``) on ``train`` until ``budget`` runs out; keep the
    epoch whose ``validate()`` (called in evaluation mode) is best in ``direction`` and restore
    its parameters before returning."""
    dtype = next(model.parameters()).dtype
    x = torch.as_tensor(train.x, dtype=dtype, device=device)
    y = torch.as_tensor(train.y, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    counts = _SolveCounts()

    def step(idx: torch.Tensor) -> float:
        idx = idx.to(device)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        logits, stats = model(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        loss.backward()
        optimizer.step()
        counts.add_forward(stats.iterations, stats.converged)
        counts.add_backward(stats.backward_iterations, stats.backward_converged)
        return float(loss.detach())

    def validate_eval() -> float:
        model.eval()
        return validate()

    run = run_epochs(
        step, len(train), validate_eval, budget,
        direction=direction, batch_size=batch_size, seed=seed,
        snapshot=lambda: copy.deepcopy(model.state_dict()),
        restore=model.load_state_dict,
        clock=lambda: now(device),
    )
    counts.fill(run)
    model.eval()
    return run
