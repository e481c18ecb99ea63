"""``dys-jfb-jax``: the ``dys-jfb`` method in JAX, to compare frameworks on the same algorithm.

The model, loss, optimiser and training schedule are those of ``dys-jfb``
(:mod:`l2obench.methods.dys`): an MLP cost model initialised like ``torch.nn.Linear``, the DYS
layer of :mod:`l2obench.layers.dys_jax` (same problem data, operator and stopping rule as the
PyTorch layer), MSE against the optimal decisions, Adam with PyTorch's defaults, and the shared
loop :func:`l2obench.training.run_epochs` (same mini-batch order for the same seed, same budget
semantics, model selection on validation regret). One optimiser step is the layer's host-driven
fixed-point solve between two jit-compiled functions (the batch's costs; the loss, JFB gradient
and Adam update at the fixed points); they compile once per batch shape (the solve once per
bucket of its shrinking batch), during the first epoch, and that time counts against the budget
like any other.

This module imports without JAX, so the registry can list the method and report the install
hint; JAX and optax are imported when the method is built.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from l2obench.errors import MissingExtraError
from l2obench.implicit.fixed_point import FixedPointStats
from l2obench.methods.base import Method
from l2obench.methods.dys import DYS_PARAMS, IterationTally
from l2obench.params import Param
from l2obench.problems.base import Capability, Dataset, Problem, Split
from l2obench.process_pool import start_jax_within_share
from l2obench.record import Budget, FitResult
from l2obench.training import run_epochs

if TYPE_CHECKING:
    import jax
    import optax

    from l2obench.layers.dys_jax import DYSLayerJax, SolveStats

#: The MLP's layers as ``(weight[out, in], bias[out])`` pairs, in ``torch.nn.Linear``'s layout.
MLPParams = list[tuple["jax.Array", "jax.Array"]]


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> MLPParams:
    """Layers ``sizes[0] → … → sizes[-1]``, initialised as ``torch.nn.Linear`` does by default.

    PyTorch draws weight and bias from ``U(−1/√fan_in, 1/√fan_in)`` (Kaiming-uniform with
    ``a = √5`` for the weight); the same distribution here keeps the two methods comparable.
    """
    import jax

    params: MLPParams = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        key, key_w, key_b = jax.random.split(key, 3)
        bound = 1.0 / math.sqrt(fan_in)
        weight = jax.random.uniform(key_w, (fan_out, fan_in), minval=-bound, maxval=bound)
        bias = jax.random.uniform(key_b, (fan_out,), minval=-bound, maxval=bound)
        params.append((weight, bias))
    return params


def apply_mlp(params: MLPParams, features: jax.Array) -> jax.Array:
    """The cost model: affine layers with ReLU between them (none after the last)."""
    import jax

    h = features
    for i, (weight, bias) in enumerate(params):
        h = h @ weight.T + bias
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def layer_costs(params: MLPParams, features: jax.Array, n_aux: int = 0) -> jax.Array:
    """The predicted costs over the layer's whole LP form: ``n_aux`` zeros appended.

    The auxiliary columns (slacks; ``n_aux`` a Python int, static under ``jit``) cost nothing;
    the layer's decisions on them are dropped.
    """
    import jax.numpy as jnp

    return jnp.pad(apply_mlp(params, features), ((0, 0), (0, n_aux)))


def mse_at_fixed_point(
    params: MLPParams,
    layer: DYSLayerJax,
    features: jax.Array,
    solutions: jax.Array,
    z_star: jax.Array,
    n_aux: int = 0,
) -> jax.Array:
    """The training loss of ``dys-jfb``: mean squared error of the layer's decisions.

    ``z_star`` is the layer's fixed point for these costs (:meth:`DYSLayerJax.solve`); the loss
    is traceable and its gradient w.r.t. ``params`` is the JFB gradient.
    """
    decisions = layer.output(layer_costs(params, features, n_aux), z_star)
    return ((decisions[:, : solutions.shape[1]] - solutions) ** 2).mean()


def make_train_step(optimizer: optax.GradientTransformation, n_aux: int = 0) -> Callable[..., Any]:
    """An optimiser step on the mini-batch ``idx`` of the training arrays.

    ``step(params, opt_state, layer, features, solutions, idx, z0)`` returns the new parameters
    and optimiser state, the batch loss, the layer's fixed points and its :class:`SolveStats`;
    the solve starts at ``z0`` (zeros if None); ``n_aux`` as in :func:`layer_costs`. The step
    runs in three parts: the batch's costs (compiled), the layer's fixed points (its
    host-driven solve, outside any trace), and the loss, JFB gradient and Adam update at those
    fixed points (one compiled function). The cost model runs twice, a negligible cost beside
    the solve.
    """
    import jax
    import optax

    @jax.jit
    def costs(params: MLPParams, features: jax.Array) -> jax.Array:
        return layer_costs(params, features, n_aux)

    @jax.jit
    def update(
        params: MLPParams, opt_state: optax.OptState, layer: DYSLayerJax,
        batch: tuple[jax.Array, jax.Array], z_star: jax.Array,
    ) -> tuple[MLPParams, optax.OptState, jax.Array]:
        loss, grads = jax.value_and_grad(mse_at_fixed_point)(params, layer, *batch, z_star, n_aux)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def step(
        params: MLPParams,
        opt_state: optax.OptState,
        layer: DYSLayerJax,
        features: jax.Array,
        solutions: jax.Array,
        idx: jax.Array,
        z0: jax.Array | None = None,
    ) -> tuple[MLPParams, optax.OptState, jax.Array, jax.Array, SolveStats]:
        batch = features[idx], solutions[idx]
        z_star, stats = layer.solve(costs(params, batch[0]), z0)
        params, opt_state, loss = update(params, opt_state, layer, batch, z_star)
        return params, opt_state, loss, z_star, stats

    return step


def jax_device(device: torch.device) -> jax.Device:
    """The JAX device for the cell's ``torch.device`` (``cpu``, or ``cuda[:i]`` → GPU ``i``).

    JAX's backends start here, if they have not, with a CPU thread pool of the cell's share of
    the cores (:func:`~l2obench.process_pool.start_jax_within_share`): ``--threads 1`` is one
    core for JAX as it is for PyTorch.
    """
    import jax

    start_jax_within_share()
    if device.type == "cpu":
        return jax.devices("cpu")[0]
    if device.type == "cuda":
        try:
            gpus = jax.devices("gpu")
        except RuntimeError as exc:
            raise MissingExtraError(
                "method 'dys-jfb-jax' on cuda needs a CUDA build of JAX, e.g. "
                "pip install 'jax[cuda12]'"
            ) from exc
        return gpus[device.index or 0]
    raise ValueError(f"dys-jfb-jax runs on cpu or cuda devices, not {device}")


class DYSJFBJax(Method):
    """MLP cost model → DYS layer → decisions in JAX, trained by MSE with JFB gradients.

    ``warm_start`` and ``projection`` as for ``dys-jfb`` (:class:`~l2obench.methods.dys.DYSMethod`);
    the fixed points kept for warm starts live in host memory between epochs.
    """

    description = "implicit DYS layer, JFB backward, in JAX (jit-compiled fixed-point loop)"
    params: ClassVar[dict[str, Param]] = DYS_PARAMS
    requires = ("jax", "optax")
    extra = "jax"
    outputs_decisions = True
    needs = frozenset({Capability.LP_FORM})
    family = "dys"
    objective = "MSE to x*"

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        import jax
        import optax

        from l2obench.layers.dys_jax import DYSLayerJax

        cfg = self.config
        self.jax_device = jax_device(self.device)
        self.layer = DYSLayerJax.from_lp(
            problem.lp(),
            alpha=cfg["alpha"],
            gamma=cfg["gamma"],
            tol=cfg["tol"],
            max_iter=cfg["max_iter"],
            device=self.jax_device,
            affine_form=cfg["projection"],
        )
        hidden = [cfg["hidden"]] if cfg["hidden"] else []
        sizes = [problem.n_features, *hidden, problem.n_vars]
        self.mlp_params: MLPParams = jax.device_put(
            init_mlp(jax.random.key(self.seed), sizes), self.jax_device
        )
        self.optimizer = optax.adam(cfg["lr"])
        n_aux = problem.n_aux
        self.train_step = make_train_step(self.optimizer, n_aux)
        self.cost_model = jax.jit(apply_mlp)
        self.layer_costs = jax.jit(functools.partial(layer_costs, n_aux=n_aux))
        self.tally = IterationTally()

    def array(self, array: np.ndarray) -> jax.Array:
        """``array`` as a float32 JAX array on the method's device."""
        import jax

        return jax.device_put(np.asarray(array, dtype=np.float32), self.jax_device)

    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        import jax

        features, solutions = self.array(data.train.features), self.array(data.train.solutions)
        opt_state = self.optimizer.init(self.mlp_params)
        n_lp = self.problem.n_vars + self.problem.n_aux
        warm = np.zeros((len(data.train), n_lp), np.float32) if self.config["warm_start"] else None

        def step(idx: torch.Tensor) -> float:
            nonlocal opt_state
            rows = idx.numpy()
            batch = jax.device_put(rows.astype(np.int32), self.jax_device)
            z0 = None if warm is None else jax.device_put(warm[rows], self.jax_device)
            self.mlp_params, opt_state, loss, z_star, stats = self.train_step(
                self.mlp_params, opt_state, self.layer, features, solutions, batch, z0
            )
            if warm is not None:
                warm[rows] = np.asarray(z_star)
            self.tally.add(
                FixedPointStats(
                    iterations=torch.from_numpy(np.array(stats.iterations, dtype=np.int64)),
                    converged=torch.from_numpy(np.array(stats.converged)),
                )
            )
            return float(loss)

        def restore(params: MLPParams) -> None:
            self.mlp_params = params

        run = run_epochs(
            step,
            len(data.train),
            lambda: self.validation_score(data.val),
            budget,
            direction=self.task_family().validation.direction,
            batch_size=self.config["batch_size"],
            seed=self.seed,
            snapshot=lambda: self.mlp_params,  # immutable arrays: keeping a reference is a copy
            restore=restore,
        )
        return dataclasses.replace(run, **self.tally.summary())

    def predict_costs(self, features: np.ndarray) -> np.ndarray:
        costs = self.cost_model(self.mlp_params, self.array(features))
        return np.asarray(costs, dtype=np.float64)

    def predict_decisions(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.decisions(self.array(features)), dtype=np.float64)

    def decisions(self, features: jax.Array) -> jax.Array:
        """The layer's decisions on the problem's decision variables (auxiliary columns dropped).

        :meth:`loss` shares it with :meth:`predict_decisions`, so the runner's timed
        ``predict_decisions`` on the test split, which comes after ``loss``, finds that split's
        shapes compiled already.
        """
        x, _ = self.layer(self.layer_costs(self.mlp_params, features))
        return x[:, : self.problem.n_vars]

    def loss(self, split: Split) -> float:
        """The MSE of the decisions, through :meth:`decisions`."""
        decisions = np.asarray(self.decisions(self.array(split.features)))
        return float(np.mean((decisions - split.solutions) ** 2))
