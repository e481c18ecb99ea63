"""Labelled train/validation/test splits, and the seeded hold-out that carves one from another."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2obench.errors import ParameterError


@dataclass(frozen=True)
class LabelledSplit:
    """Inputs ``x[N, C, *spatial]`` (float32) with their class labels ``y[N]`` (int64)."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.x.shape[0]} inputs but {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def features(self) -> np.ndarray:
        """The inputs flattened to ``[N, C · Π spatial]`` (what the runner passes to a method's
        ``predict``; the problem's ``input_shape`` restores them)."""
        return self.x.reshape(self.x.shape[0], -1)

    @property
    def labels(self) -> np.ndarray:
        """The true classes (what the scorer compares against)."""
        return self.y

    def take(self, idx: np.ndarray) -> LabelledSplit:
        """The instances ``idx``, in that order."""
        return LabelledSplit(self.x[idx], self.y[idx])


@dataclass(frozen=True)
class ClassificationData:
    """A data set's three splits: ``train`` to fit, ``val`` to select, ``test`` to score.

    ``input_shape`` is ``(C, *spatial)`` — one channel axis then one (signals) or two (images)
    spatial axes — and labels lie in ``range(n_classes)``.
    """

    name: str
    train: LabelledSplit
    val: LabelledSplit
    test: LabelledSplit
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[1:])


def hold_out(
    split: LabelledSplit, fraction: float, seed: int
) -> tuple[LabelledSplit, LabelledSplit]:
    """``(rest, held)``: a seeded random ``fraction`` of ``split`` held out, the rest kept.

    The permutation comes from ``numpy.random.default_rng(seed)``, so the same seed gives the
    same split on every machine; both parts keep at least one instance.
    """
    if not 0.0 < fraction < 1.0:
        raise ParameterError(f"a held-out fraction must lie in (0, 1), not {fraction}")
    n = len(split)
    n_held = round(n * fraction)
    if n_held < 1 or n_held >= n:
        raise ParameterError(f"holding out {fraction} of {n} instances leaves an empty split")
    order = np.random.default_rng(seed).permutation(n)
    return split.take(np.sort(order[n_held:])), split.take(np.sort(order[:n_held]))
