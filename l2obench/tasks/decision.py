"""The predict-then-optimize family: models predict cost vectors, scored by decision regret.

A model outputs one cost vector per context; the problem's exact oracle turns it into a
decision, and the decision is scored under the true costs against the optimum
(:mod:`l2obench.metrics`): normalized regret ranks methods and, on the validation split,
selects epochs and configurations (lower is better), accuracy is the share of instances
decided optimally, and each test instance's regret is kept for paired tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from l2obench.tasks.base import Metric, Scores, Task


class DecisionTask(Task):
    """Predict costs, decide with the exact oracle, score the decision's regret."""

    description = "predict-then-optimize: predicted costs, decided by the exact oracle"
    output = "a cost vector per instance [N, n_vars]"
    n_vars_label = "decision variables"
    metrics = (
        Metric("norm_regret", "normalized regret", "min", per_instance="test_regrets",
               short="regret",
               description="Σ regret / Σ |optimal objective| on the test split (PyEPO)"),
        Metric("accuracy", "accuracy", "max",
               description="share of test instances decided optimally (regret below 1e-3 of "
                           "the optimal objective)"),
    )
    rank_metric = "norm_regret"
    validation = Metric("val_regret", "validation regret", "min",
                        description="normalized regret on the validation split")

    def score(self, problem: Any, split: Any, outputs: np.ndarray) -> Scores:
        from l2obench.metrics import decision_quality

        quality = decision_quality(problem, split, outputs)
        return Scores(values={"norm_regret": quality.norm_regret, "accuracy": quality.accuracy},
                      per_instance={"test_regrets": [float(r) for r in quality.regrets]})

    def ideal_outputs(self, split: Any) -> np.ndarray:
        """The true costs: the oracle's decisions under them have zero regret."""
        return np.asarray(split.costs, dtype=np.float64)

    def deploy(self, problem: Any, method: Any, features: np.ndarray) -> object:
        """The decisions: the method's own layer where it has one, else the exact oracle under
        its predicted costs."""
        if method.outputs_decisions:
            return method.predict_decisions(features)
        return problem.oracle(method.predict(features))
