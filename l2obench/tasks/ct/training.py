"""Training a learned reconstructor: MSE to the ground-truth images, Adam, mini-batches.

The setting of Heaton & Wu Fung (Sci. Rep. 2023) for every learned CT method. A reconstructor is
any module mapping measurements ``[N, A, D]`` to images ``[N, n, n]``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from l2obench.tasks.ct.data import CTData

log = logging.getLogger(__name__)


def train(model: nn.Module, data: CTData, steps: int, batch_size: int = 8, lr: float = 1e-3,
          seed: int = 0) -> list[float]:
    """``steps`` Adam steps on the MSE of random mini-batches of ``data``; the batch losses.

    The model's parameters decide the device and dtype of the batches. Stops early (and logs
    why) if a loss is not finite.
    """
    param = next(model.parameters())
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        rows = rng.choice(len(data), size=min(batch_size, len(data)), replace=False)
        d = torch.as_tensor(data.measurements[rows], dtype=param.dtype, device=param.device)
        x = torch.as_tensor(data.images[rows], dtype=param.dtype, device=param.device)
        loss = ((model(d) - x) ** 2).mean()
        if not torch.isfinite(loss):
            log.warning("training stopped: the loss is %s", float(loss))
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
