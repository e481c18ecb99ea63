"""Accuracy and cross-entropy of class scores against the true labels, per instance.

The scorer is the task's (:class:`~.task.ClassificationTask`), not the method's: a method hands
over its class scores (logits) and the labels never pass through it. Accuracy ranks and selects
(higher is better); the cross-entropy ``−log softmax(s)_y`` is reported beside it (lower is
better).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassificationScores:
    """Per instance: ``correct[i]`` (1.0 if the top score is the true class, else 0.0; ties go
    to the lowest class index, as ``argmax``) and ``cross_entropy[i]`` (nats)."""

    correct: np.ndarray
    cross_entropy: np.ndarray

    def summary(self) -> dict[str, float]:
        """``{"accuracy": mean correct, "cross_entropy": mean cross-entropy}``."""
        return {"accuracy": float(self.correct.mean()),
                "cross_entropy": float(self.cross_entropy.mean())}


def score(logits: np.ndarray, labels: np.ndarray) -> ClassificationScores:
    """Score class scores ``logits[N, K]`` against ``labels[N]`` in ``range(K)``.

    The cross-entropy is computed in float64 with the log-sum-exp shifted by each row's maximum,
    so large scores do not overflow.
    """
    s = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 2 or y.ndim != 1 or s.shape[0] != y.shape[0] or s.shape[0] == 0:
        raise ValueError(f"scores of shape {s.shape} do not match labels of shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= s.shape[1]:
        raise ValueError(f"labels must be integers in range({s.shape[1]})")
    if not np.isfinite(s).all():
        raise ValueError("class scores contain NaN or infinite values")
    rows = np.arange(s.shape[0])
    top = s.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(s - top).sum(axis=1))
    return ClassificationScores(
        correct=(s.argmax(axis=1) == y).astype(np.float64),
        cross_entropy=log_z - s[rows, y],
    )
