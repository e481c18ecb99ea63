"""The classification task family: class scores out, accuracy ranks (higher is better).

Per test instance the scorer (:func:`~.scoring.score`) keeps whether the top score is the true
class and the cross-entropy; their means are the record's ``accuracy`` and ``cross_entropy``.
Validation accuracy keeps a training epoch and selects a configuration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from l2obench.tasks.base import Metric, Scores, Task
from l2obench.tasks.classification.datasets import N_CLASSES
from l2obench.tasks.classification.scoring import score

#: The logit of the true class in :meth:`ClassificationTask.ideal_outputs` (others 0): a
#: cross-entropy of about ``(K − 1) e^{−IDEAL_MARGIN}``, zero in float64 for ten classes.
IDEAL_MARGIN = 800.0


class ClassificationTask(Task):
    """Predict class scores; accuracy against the true labels ranks."""

    description = "classification: class scores (logits) for each input"
    output = "class scores per instance [N, n_classes]"
    n_vars_label = "classes"
    metrics = (
        Metric("accuracy", "accuracy", "max", per_instance="test_correct",
               description="share of test inputs whose top class score is the true class"),
        Metric("cross_entropy", "cross-entropy", "min", unit="nats",
               per_instance="test_cross_entropy",
               description="mean over test inputs of −log softmax(scores)[label]"),
    )
    rank_metric = "accuracy"
    validation = Metric("val_accuracy", "validation accuracy", "max",
                        description="accuracy on the validation split")

    def ideal_outputs(self, split: Any) -> np.ndarray:
        """Scores with the true class ``IDEAL_MARGIN`` above every other."""
        labels = np.asarray(split.labels)
        out = np.zeros((len(labels), N_CLASSES))
        out[np.arange(len(labels)), labels] = IDEAL_MARGIN
        return out

    def score(self, problem: Any, split: Any, outputs: np.ndarray) -> Scores:
        n_classes = int(problem.n_vars) if problem is not None else np.shape(outputs)[-1]
        outputs = self.checked_outputs(outputs, (len(split), n_classes), "class scores")
        result = score(outputs, split.labels)
        values: dict[str, float | None] = dict(result.summary())
        return Scores(values=values,
                      per_instance={"test_correct": result.correct.tolist(),
                                    "test_cross_entropy": result.cross_entropy.tolist()})
