"""The exact shortest-path oracle on a batch: the solver behind every regret l2obench reports."""

from __future__ import annotations

import numpy as np

from l2obench import Problem

from .common import SIZES, dataset

#: Instances solved per call (the batch of the issue's ratio against per-instance Gurobi).
ORACLE_BATCH = 1000


class ExactOracle:
    """``problem.oracle(costs)`` on 1 000 cost vectors at once (the default backend)."""

    params = (list(SIZES),)
    param_names = ("k",)
    version = "1"
    timeout = 120

    def setup(self, k: int) -> None:
        problem, data = dataset(k, ORACLE_BATCH, 1)
        self.problem: Problem = problem
        self.costs: np.ndarray = data.train.costs

    def time_oracle_batch(self, k: int) -> None:
        self.problem.oracle(self.costs)
