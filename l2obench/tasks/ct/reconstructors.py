"""The CT family's methods behind one interface, by name, for the runner to wire.

A :class:`Reconstructor` is built for one operator, ``fit`` on a training set (a no-op for the
classical methods) and ``reconstruct``-s measurements; it never scores itself (the family's
scorer compares its images with the ground truth, :mod:`l2obench.tasks.ct.scoring`).
:data:`METHODS` maps each name of the issue's roster to its builder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from l2obench.errors import UnknownNameError, did_you_mean
from l2obench.implicit.backward import JFB, Implicit, Unrolled
from l2obench.implicit.fixed_point import Picard
from l2obench.implicit.linear_solvers import GMRES
from l2obench.tasks.ct.data import CTData
from l2obench.tasks.ct.fbp import fbp
from l2obench.tasks.ct.ffpn import FFPN
from l2obench.tasks.ct.l2o import ImplicitL2O
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.training import train
from l2obench.tasks.ct.tv import TVMin
from l2obench.tasks.ct.unet import FBPConvNet


class Reconstructor(ABC):
    """Measurements ``[N, A, D]`` → images ``[N, n, n]`` for one :class:`RayTransform`."""

    def __init__(self, op: RayTransform) -> None:
        self.op = op

    def fit(self, data: CTData, steps: int, batch_size: int = 8, lr: float = 1e-3,
            seed: int = 0) -> list[float]:
        """Train on ``data`` for ``steps`` optimiser steps; the batch losses ([] if untrained)."""
        return []

    @abstractmethod
    def reconstruct(self, measurements: Tensor) -> Tensor:
        """The images, on the operator's device, without a tape."""


class FBP(Reconstructor):
    """Filtered backprojection (:func:`~l2obench.tasks.ct.fbp.fbp`)."""

    def reconstruct(self, measurements: Tensor) -> Tensor:
        return fbp(measurements.to(self.op.device, self.op.dtype), self.op)


class TV(Reconstructor):
    """TV-min by PDHG (:class:`~l2obench.tasks.ct.tv.TVMin`), warm-started from the FBP."""

    def __init__(self, op: RayTransform, fidelity: float = 0.02, tol: float = 1e-4,
                 max_iter: int = 2000, balance: float = 30.0) -> None:
        super().__init__(op)
        self.solver = TVMin(fidelity=fidelity, tol=tol, max_iter=max_iter, balance=balance)

    def reconstruct(self, measurements: Tensor) -> Tensor:
        d = measurements.to(self.op.device, self.op.dtype)
        x0 = torch.clamp(fbp(d, self.op), 0.0, 1.0)
        return self.solver(d, self.op, x0)[0]


class Learned(Reconstructor):
    """A learned module trained by :func:`~l2obench.tasks.ct.training.train`."""

    def __init__(self, op: RayTransform, model: nn.Module) -> None:
        super().__init__(op)
        self.model = model

    def fit(self, data: CTData, steps: int, batch_size: int = 8, lr: float = 1e-3,
            seed: int = 0) -> list[float]:
        return train(self.model, data, steps, batch_size=batch_size, lr=lr, seed=seed)

    def reconstruct(self, measurements: Tensor) -> Tensor:
        self.model.eval()
        with torch.no_grad():
            return self.model(measurements.to(self.op.device, self.op.dtype))


@dataclass(frozen=True)
class MethodSpec:
    """How to build one named method: its builder and a line saying what it is."""

    build: Callable[..., Reconstructor]
    description: str


def _l2o(backward: Any) -> Callable[..., Reconstructor]:
    def build(op: RayTransform, tol: float = 1e-3, max_iter: int = 100, **kw: Any) -> Learned:
        return Learned(op, ImplicitL2O(op, solver=Picard(tol=tol, max_iter=max_iter),
                                       backward=backward, **kw))
    return build


METHODS: dict[str, MethodSpec] = {
    "fbp": MethodSpec(FBP, "filtered backprojection (ramp filter), no training"),
    "tv-min": MethodSpec(TV, "anisotropic TV subject to the fidelity bound and the box, PDHG"),
    "unet": MethodSpec(lambda op, width=32: Learned(op, FBPConvNet(op, width)),
                       "FBPConvNet: a U-Net on the FBP image, MSE + Adam"),
    "ffpn": MethodSpec(
        lambda op, channels=44, tol=1e-3, max_iter=50: Learned(
            op, FFPN(op, channels, solver=Picard(tol=tol, max_iter=max_iter))),
        "feasibility-based fixed point network, JFB"),
    "l2o-jfb": MethodSpec(_l2o(JFB()), "implicit L2O (linearized ADMM), JFB"),
    "l2o-unrolled": MethodSpec(
        lambda op, K=20, **kw: Learned(op, ImplicitL2O(op, backward=Unrolled(K), **kw)),
        "implicit L2O (linearized ADMM), backprop through K steps"),
    "l2o-implicit": MethodSpec(
        _l2o(Implicit(GMRES(tol=1e-2, max_iter=30, restart=30))),
        "implicit L2O (linearized ADMM), implicit gradient by a GMRES adjoint solve"),
}


def build(name: str, op: RayTransform, **params: Any) -> Reconstructor:
    """The method ``name`` for ``op`` with ``params``; an unknown name is one clear error."""
    if name not in METHODS:
        raise UnknownNameError(f"unknown CT method '{name}'{did_you_mean(name, METHODS)}; "
                               f"known: {', '.join(METHODS)}")
    return METHODS[name].build(op, **params)
