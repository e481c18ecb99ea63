"""The fpo-dys algorithm, written plainly: the reference that l2obench's DYS layer is timed against.

What the fpo-dys code (McKenzie et al., github.com/mines-opt-ml/fpo-dys) does for shortest path,
for the ``dys-vs-fpo-dys`` comparison (``benchmarks/comparisons/dys_vs_fpo_dys.py``;
docs/methods.md):

- ``P_aff`` through a dense pseudo-inverse of ``A``: ``P_aff(v) = v − A⁺(A v − b)``, two dense
  matrix products per application (fpo-dys multiplies by the factors of an SVD of ``A``, three
  products; singular values below 1e-6 count as zero, as there);
- the operator with the gradient taken at ``z``: ``T(z) = z − x + P_aff(2x − z − α(w + γz))``,
  ``x = P_box(z)``;
- one stopping test for the whole batch: stop when ``‖Z_{k+1} − Z_k‖_F ≤ tol`` (the norm over
  all instances together) or after ``max_iter`` steps, with fpo-dys's published α = 0.05,
  γ = 5e-4, tol = 1e-2, max_iter = 10 000;
- JFB: the iterations run without a tape, then one application of ``T`` on the tape at the
  (detached) fixed point, and the decisions are ``P_box`` of it.

Two deliberate differences from the fpo-dys code, neither of which changes the fixed point: the box
is the LP's own (``0 ≤ x ≤ 1``; fpo-dys clamps at 0 only, which on a DAG with one unit of flow is
the same feasible set), and the iteration starts at ``z = 0`` instead of one uniform random
vector, so runs are deterministic and start where l2obench's layer starts.

The training loop follows l2obench's protocol (``l2obench.training.run_epochs``) so that the two
sides of a ratio do the same work per epoch: the same mini-batch order for the same seed, Adam,
MSE of the decisions to the optimal ones, and after every epoch the validation regret (with
``l2obench.metrics`` and the exact oracle), keeping the best epoch's parameters.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from l2obench.metrics import normalized_regret
from l2obench.problems.base import Dataset, LPForm, Problem

#: fpo-dys drops singular values of ``A`` below this when it builds the pseudo-inverse.
SINGULAR_VALUE_CUTOFF = 1e-6


@dataclass(frozen=True)
class FpoDysSettings:
    """The published fpo-dys shortest-path settings (docs/methods.md)."""

    alpha: float = 0.05
    gamma: float = 5e-4
    tol: float = 1e-2
    max_iter: int = 10_000


class FpoDysLayer:
    """The fpo-dys DYS layer for one LP: dense pseudo-inverse projection, whole-batch stopping.

    ``last_iterations`` holds the number of operator applications of the latest solve (one count
    for the whole batch, since the batch stops together).
    """

    def __init__(
        self,
        lp: LPForm,
        settings: FpoDysSettings = FpoDysSettings(),
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.settings = settings
        A = torch.as_tensor(lp.A.toarray(), dtype=torch.float64)
        self.A = A.to(dtype)
        self.A_pinv = torch.linalg.pinv(A, atol=SINGULAR_VALUE_CUTOFF).to(dtype)
        self.b = torch.as_tensor(lp.b, dtype=dtype)
        self.lower = torch.as_tensor(lp.lower, dtype=dtype)
        self.upper = torch.as_tensor(lp.upper, dtype=dtype)
        self.last_iterations = 0

    def project_box(self, z: Tensor) -> Tensor:
        """``P_box``: clamp every row of ``z[N, n]`` to the bounds."""
        return torch.clamp(z, self.lower, self.upper)

    def project_affine(self, v: Tensor) -> Tensor:
        """``P_aff(v) = v − A⁺(A v − b)`` for every row of ``v[N, n]``."""
        return v - (v @ self.A.T - self.b) @ self.A_pinv.T

    def step(self, z: Tensor, w: Tensor) -> Tensor:
        """One application of the fpo-dys operator ``T(z; w)`` (gradient ``w + γz``)."""
        s = self.settings
        x = self.project_box(z)
        y = self.project_affine(2.0 * x - z - s.alpha * (w + s.gamma * z))
        return z - x + y

    @torch.no_grad()
    def solve(self, w: Tensor) -> Tensor:
        """Iterate ``T`` from ``z = 0`` until ``‖Z_{k+1} − Z_k‖_F ≤ tol`` (whole batch) or
        ``max_iter``; returns the last ``Z`` and sets :attr:`last_iterations`."""
        s = self.settings
        z = torch.zeros_like(w)
        iterations = 0
        while iterations < s.max_iter:
            z_next = self.step(z, w)
            iterations += 1
            moved = torch.linalg.vector_norm(z_next - z)
            z = z_next
            if moved <= s.tol:
                break
        self.last_iterations = iterations
        return z

    def __call__(self, w: Tensor) -> Tensor:
        """Decisions ``P_box(T(z*; w))``, JFB gradient: one taped step at the fixed point."""
        z_star = self.solve(w.detach())
        return self.project_box(self.step(z_star, w))

    @torch.no_grad()
    def residuals(self, z: Tensor, w: Tensor) -> Tensor:
        """Each instance's fixed-point residual ``‖T(z_i; w_i) − z_i‖₂``, shape ``[N]``."""
        return torch.linalg.vector_norm(self.step(z, w) - z, dim=1)

    def equivalent_point(self, z: Tensor, x: Tensor, alpha: float) -> Tensor:
        """The point of this operator that carries the same solution estimate as ``z``, an
        iterate of the textbook DYS operator (gradient ``w + γx``) with step ``alpha`` and
        ``x = P_box(z)``.

        Both operators' iterates encode a primal point ``x`` and a scaled multiplier in
        ``z − x``: at a fixed point ``z − x = −α(w + γx + Aᵀλ)`` for the textbook operator and
        ``−α(w + γx + Aᵀλ)/(1 + αγ)`` for this one (the same ``γ``, the same ``x*``, ``λ*``).
        Rescaling ``z − x`` accordingly maps fixed points onto fixed points, so this operator's
        residual at the mapped point measures another layer's solution on this layer's scale.
        """
        s = self.settings
        scale = s.alpha / (alpha * (1.0 + s.alpha * s.gamma))
        return x + scale * (z - x)


@dataclass
class ReferenceRun:
    """What a reference training run did: epochs, seconds, iterations per batch, best epoch."""

    epochs: int = 0
    seconds: float = 0.0
    best_epoch: int | None = None
    batch_iterations: list[int] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / self.epochs if self.epochs else math.nan


def train_reference(
    model: nn.Module,
    layer: FpoDysLayer,
    problem: Problem,
    data: Dataset,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> ReferenceRun:
    """Train ``model`` through ``layer`` for ``epochs`` epochs and keep the best validation epoch.

    The mini-batch order is ``l2obench.training.run_epochs``'s (a ``torch.randperm`` per epoch
    from a generator seeded with ``seed``); the clock covers training and the per-epoch
    validation, as l2obench's seconds per epoch do.
    """
    features = torch.as_tensor(data.train.features)
    solutions = torch.as_tensor(data.train.solutions)
    val_features = torch.as_tensor(data.val.features)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    run = ReferenceRun()
    best_score, best_state = math.inf, None
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(features), generator=generator)
        for first in range(0, len(order), batch_size):
            idx = order[first : first + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(layer(model(features[idx])), solutions[idx])
            loss.backward()
            optimizer.step()
            run.batch_iterations.append(layer.last_iterations)
        model.eval()
        with torch.no_grad():
            costs = model(val_features).double().numpy()
        score = normalized_regret(problem, data.val, costs)
        if score < best_score:
            best_score, best_state, run.best_epoch = score, copy.deepcopy(model.state_dict()), epoch
        run.epochs = epoch
    run.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return run


def predict_costs(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """The model's cost vectors for ``features``, in float64 (what ``l2obench.metrics`` takes)."""
    with torch.no_grad():
        return model(torch.as_tensor(features, dtype=torch.float32)).double().numpy()
