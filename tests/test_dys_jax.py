"""The JAX DYS layer and ``dys-jfb-jax`` against the PyTorch layer and ``dys-jfb``.

The PyTorch layer is tested against independent references in ``test_dys_layer.py``; here the
JAX layer must reproduce it: the same outputs, per-instance iteration counts and JFB gradients
for the same inputs and weights. Exact comparisons run in float64 (JAX's x64 mode switched on
by a fixture and restored after); one float32 comparison runs at the method's default settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pytest
import torch
from torch.nn import functional as F

jax = pytest.importorskip("jax")
pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402

from l2obench.errors import MissingExtraError  # noqa: E402
from l2obench.implicit.fixed_point import Picard  # noqa: E402
from l2obench.layers import dys_jax  # noqa: E402
from l2obench.layers.dys import DYSLayer  # noqa: E402
from l2obench.layers.dys_jax import DYSLayerJax, bucket  # noqa: E402
from l2obench.methods.base import Budget, method_registry  # noqa: E402
from l2obench.methods.dys import DYS_PARAMS  # noqa: E402
from l2obench.methods.dys_jax import (  # noqa: E402
    DYSJFBJax,
    MLPParams,
    apply_mlp,
    init_mlp,
    layer_costs,
    mse_at_fixed_point,
)
from l2obench.methods.torch_method import cost_model  # noqa: E402
from l2obench.problems.base import LPForm  # noqa: E402
from l2obench.problems.shortest_path import ShortestPath  # noqa: E402

#: XLA compiles for each shape: the full lane only (`pytest -m "not slow"` skips them).
pytestmark = pytest.mark.slow

F64 = torch.float64
#: Settings whose solutions lie off the LP's vertices (γ = 0.5), so gradients are not zero, and
#: whose tolerance leaves float64 rounding far behind.
EXACT = {"alpha": 1.0, "gamma": 0.5}
TOL, MAX_ITER = 1e-10, 100_000


@pytest.fixture
def x64() -> Iterator[None]:
    """JAX in float64 for the duration of one test."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


#: An LP's sense.
Sense = Literal["min", "max"]


def grid_lp(k: int, sense: Sense = "min") -> LPForm:
    return dataclasses.replace(ShortestPath(k=k).lp(), sense=sense)


def layer_pair(
    lp: LPForm, form: str, tol: float = TOL, max_iter: int = MAX_ITER
) -> tuple[DYSLayer, DYSLayerJax]:
    """The PyTorch and the JAX layer for ``lp`` with the same float64 settings."""
    torch_layer = DYSLayer(
        lp, **EXACT, solver=Picard(tol, max_iter), dtype=F64, affine_form=form  # type: ignore[arg-type]
    )
    jax_layer = DYSLayerJax.from_lp(
        lp, **EXACT, tol=tol, max_iter=max_iter, dtype=jnp.float64, affine_form=form
    )
    assert torch_layer.aff.form == jax_layer.form == form
    return torch_layer, jax_layer


def costs(n: int, n_vars: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, n_vars))


FORMS = ["dense", "factored", "kronecker", "grid", "dct"]


@pytest.mark.parametrize("sense", ["min", "max"])
@pytest.mark.parametrize("form", FORMS)
def test_forward_and_iterations_match_torch(x64: None, form: str, sense: Sense) -> None:
    lp = grid_lp(4, sense)
    torch_layer, jax_layer = layer_pair(lp, form)
    W = costs(6, lp.n_vars)
    with torch.no_grad():
        x_torch, stats_torch = torch_layer(torch.as_tensor(W))
        x_torch = x_torch.numpy()
    x_jax, stats = jax_layer(jnp.asarray(W))

    np.testing.assert_allclose(np.asarray(x_jax), x_torch, atol=1e-10, rtol=0)
    iterations = np.asarray(stats.iterations)
    assert iterations.tolist() == stats_torch.iterations.tolist()
    assert len(set(iterations.tolist())) > 1  # instances stopped at different steps
    assert np.asarray(stats.converged).all()


def test_unconverged_instances_match_torch(x64: None) -> None:
    """Instances that hit ``max_iter`` are counted and returned as the PyTorch solver does."""
    lp = grid_lp(4)
    torch_layer, jax_layer = layer_pair(lp, "dense", max_iter=40)
    W = costs(6, lp.n_vars)
    with torch.no_grad():
        x_torch, stats_torch = torch_layer(torch.as_tensor(W))
        x_torch = x_torch.numpy()
    x_jax, stats = jax_layer(jnp.asarray(W))
    converged = np.asarray(stats.converged)
    assert converged.tolist() == stats_torch.converged.tolist()
    assert not converged.all()
    assert np.asarray(stats.iterations).tolist() == stats_torch.iterations.tolist()
    np.testing.assert_allclose(np.asarray(x_jax), x_torch, atol=1e-10, rtol=0)


@pytest.mark.parametrize("form", FORMS)
def test_float32_forward_matches_torch_at_default_settings(form: str) -> None:
    """The training configuration: float32, α = 0.05, γ = 5e-4, tol = 1e-2."""
    problem = ShortestPath(k=5, n_train=64, n_val=1, n_test=1)
    lp = problem.lp()
    W = problem.generate().train.costs + 0.3 * costs(64, lp.n_vars).astype(np.float32)
    torch_layer = DYSLayer(lp, affine_form=form)  # type: ignore[arg-type]
    jax_layer = DYSLayerJax.from_lp(lp, affine_form=form)
    with torch.no_grad():
        x_torch, stats_torch = torch_layer(torch.as_tensor(W))
        x_torch = x_torch.numpy()
    x_jax, stats = jax_layer(jnp.asarray(W))
    assert x_jax.dtype == jnp.float32
    assert np.asarray(stats.iterations).tolist() == stats_torch.iterations.tolist()
    np.testing.assert_allclose(np.asarray(x_jax), x_torch, atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["dense", "kronecker", "grid"])
def test_compacting_solve_matches_torch_picard(x64: None, form: str) -> None:
    """A batch past ``MIN_BUCKET`` shrinks while it is solved; every instance's ``z*`` and
    iteration count stay those of the PyTorch solver, with ``max_iter`` met by half of them
    after compactions."""
    lp = grid_lp(4)
    W = torch.as_tensor(costs(100, lp.n_vars, seed=3))
    torch_layer, _ = layer_pair(lp, form)
    with torch.no_grad():
        _, solved = torch_layer(W)
    for max_iter in (MAX_ITER, int(solved.iterations.median())):
        torch_layer, jax_layer = layer_pair(lp, form, max_iter=max_iter)
        shift = torch_layer.aff(-torch_layer.alpha * W)  # the shift of DYSLayer.forward, "min"
        z_torch, stats_torch = Picard(TOL, max_iter)(
            torch_layer.operator, torch.zeros_like(W), (shift,)
        )
        z_jax, stats_jax = jax_layer.solve(jnp.asarray(W.numpy()))
        assert np.asarray(stats_jax.iterations).tolist() == stats_torch.iterations.tolist()
        assert np.asarray(stats_jax.converged).tolist() == stats_torch.converged.tolist()
        np.testing.assert_allclose(np.asarray(z_jax), z_torch.numpy(), atol=1e-10, rtol=0)
        assert (max_iter == MAX_ITER) == bool(stats_torch.converged.all())


def test_bucket_sizes() -> None:
    assert [bucket(n_live, 200) for n_live in (1, 32, 33, 64, 65, 128, 129, 200)] == [
        32, 32, 64, 64, 128, 128, 200, 200
    ]
    assert bucket(5, 10) == 10  # never past the batch itself


def test_solve_runs_on_bucketed_batch_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk of a solve runs on the batch's own size or a smaller :func:`bucket` size."""
    sizes: list[int] = []
    chunk = dys_jax._chunk

    def recording_chunk(fn, consts, z, *args, **kwargs):
        sizes.append(z.shape[0])
        return chunk(fn, consts, z, *args, **kwargs)

    monkeypatch.setattr(dys_jax, "_chunk", recording_chunk)
    problem = ShortestPath(k=5, n_train=200, n_val=1, n_test=1)
    W = problem.generate().train.costs + 0.3 * costs(200, problem.n_vars).astype(np.float32)
    DYSLayerJax.from_lp(problem.lp()).solve(jnp.asarray(W))
    assert sizes[0] == 200 and len(sizes) > 1
    assert sizes == sorted(set(sizes), reverse=True)  # each chunk on a smaller batch
    assert set(sizes) <= {200, 128, 64, 32}


@pytest.mark.parametrize(("form", "sense"), [("dense", "min"), ("factored", "max"),
                                             ("grid", "min"), ("dct", "max")])
def test_jfb_gradient_wrt_costs_matches_torch(x64: None, form: str, sense: Sense) -> None:
    lp = grid_lp(4, sense)
    torch_layer, jax_layer = layer_pair(lp, form)
    W, G = costs(5, lp.n_vars, seed=1), costs(5, lp.n_vars, seed=2)

    w = torch.as_tensor(W).requires_grad_(True)
    (grad_torch,) = torch.autograd.grad(torch_layer(w)[0], w, torch.as_tensor(G))
    z_star, _ = jax_layer.solve(jnp.asarray(W))
    grad_jax = jax.jit(jax.grad(lambda w: (jax_layer.output(w, z_star) * G).sum()))(jnp.asarray(W))

    assert grad_torch.abs().max() > 1e-2
    np.testing.assert_allclose(np.asarray(grad_jax), grad_torch.numpy(), rtol=1e-4, atol=1e-10)


@pytest.mark.parametrize("hidden", [0, 16])
def test_jfb_gradient_wrt_mlp_weights_matches_torch(x64: None, hidden: int) -> None:
    """The MSE loss of ``dys-jfb`` through identical MLPs: same value, same weight gradients."""
    problem = ShortestPath(k=3, n_train=32, n_val=1, n_test=1)
    train = problem.generate().train
    torch_layer, jax_layer = layer_pair(problem.lp(), "dense")
    torch.manual_seed(0)
    model = cost_model(problem.n_features, hidden, problem.n_vars).to(F64)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    params: MLPParams = [
        (jnp.asarray(m.weight.detach().numpy()), jnp.asarray(m.bias.detach().numpy()))
        for m in linears
    ]
    features = torch.as_tensor(train.features, dtype=F64)
    solutions = torch.as_tensor(train.solutions, dtype=F64)

    loss_torch = F.mse_loss(torch_layer(model(features))[0], solutions)
    loss_torch.backward()
    features_jax = jnp.asarray(features.numpy())
    z_star, _ = jax_layer.solve(layer_costs(params, features_jax))
    loss_jax, grads = jax.value_and_grad(mse_at_fixed_point)(
        params, jax_layer, features_jax, jnp.asarray(solutions.numpy()), z_star
    )

    np.testing.assert_allclose(float(loss_jax), float(loss_torch.detach()), rtol=1e-10)
    for linear, (grad_w, grad_b) in zip(linears, grads, strict=True):
        assert linear.weight.grad is not None and linear.bias.grad is not None
        assert linear.weight.grad.abs().max() > 1e-4
        np.testing.assert_allclose(
            np.asarray(grad_w), linear.weight.grad.numpy(), rtol=1e-4, atol=1e-10
        )
        np.testing.assert_allclose(
            np.asarray(grad_b), linear.bias.grad.numpy(), rtol=1e-4, atol=1e-10
        )


def test_mlp_init_follows_torch_linear() -> None:
    """Weights and biases in ``U(−1/√fan_in, 1/√fan_in)``, in ``torch.nn.Linear``'s layout."""
    params = init_mlp(jax.random.key(0), [5, 400, 12])
    (w1, b1), (w2, b2) = params
    assert w1.shape == (400, 5) and b1.shape == (400,)
    assert w2.shape == (12, 400) and b2.shape == (12,)
    for array, fan_in in [(w1, 5), (b1, 5), (w2, 400)]:
        bound = 1 / np.sqrt(fan_in)
        assert float(jnp.abs(array).max()) <= bound
        assert float(jnp.abs(array).max()) > 0.95 * bound  # fills the interval
    x = jnp.ones((2, 5), jnp.float32)
    expected = jax.nn.relu(x @ w1.T + b1) @ w2.T + b2
    np.testing.assert_allclose(np.asarray(apply_mlp(params, x)), expected, rtol=1e-6)


def test_method_trains_and_predicts() -> None:
    problem = ShortestPath(k=3, n_train=60, n_val=20, n_test=20)
    data = problem.generate()
    method = method_registry.get("dys-jfb-jax")(problem, torch.device("cpu"), seed=0)
    assert isinstance(method, DYSJFBJax)
    assert method.params is DYS_PARAMS  # the parameters of dys-jfb, shared, not copied
    fit = method.fit(data, Budget(max_epochs=2))

    assert fit.epochs == 2 and fit.stopped_by == "epochs" and fit.best_epoch in (1, 2)
    assert [h["epoch"] for h in fit.history] == [1, 2]
    assert fit.fwd_iters_mean is not None and fit.fwd_iters_mean > 1
    assert fit.fwd_iters_max is not None and fit.fwd_unconverged == 0
    assert fit.bwd_iters_mean is None
    pred = method.predict_costs(data.test.features)
    assert pred.shape == data.test.costs.shape and pred.dtype == np.float64
    assert np.isfinite(pred).all()
    decisions = method.predict_decisions(data.test.features)
    assert decisions.shape == data.test.costs.shape
    assert (decisions >= 0).all() and (decisions <= 1).all()
    assert np.isfinite(method.loss(data.test))


def test_method_warm_starts_from_the_last_fixed_points() -> None:
    problem = ShortestPath(k=4, n_train=48, n_val=8, n_test=8, seed=2)
    data = problem.generate()
    per_epoch = {}
    for warm in (False, True):
        method = method_registry.get("dys-jfb-jax")(problem, torch.device("cpu"), seed=0,
                                                    batch_size=16, warm_start=warm)
        assert isinstance(method, DYSJFBJax)
        method.fit(data, Budget(max_epochs=3))
        per_epoch[warm] = [float(torch.cat([s.iterations for s in method.tally.steps[i : i + 3]])
                                 .double().mean()) for i in (0, 6)]
    assert per_epoch[True][0] == per_epoch[False][0]  # the first epoch starts at z = 0
    assert per_epoch[True][1] < per_epoch[False][1]


def test_missing_jax_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DYSJFBJax, "requires", ("jax", "l2obench_no_such_module"))
    assert DYSJFBJax.missing_requirements() == ["l2obench_no_such_module"]
    assert DYSJFBJax.install_hint() == "pip install 'l2obench[jax]'"
    with pytest.raises(MissingExtraError, match=r"pip install 'l2obench\[jax\]'"):
        DYSJFBJax(ShortestPath(k=3), torch.device("cpu"), seed=0)


@pytest.mark.slow
def test_method_module_imports_without_jax() -> None:
    """Listing methods must not need the extra: the module imports JAX only when built."""
    code = (
        "import sys; sys.modules['jax'] = sys.modules['optax'] = None\n"
        "from l2obench.methods.dys_jax import DYSJFBJax\n"
        "assert DYSJFBJax.extra == 'jax'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


_THREADS_SCRIPT = """
import json, os, sys
import torch
from l2obench import process_pool
from l2obench.methods.dys_jax import jax_device

def tasks():
    return set(os.listdir("/proc/self/task"))

def allowed(task):
    with open(f"/proc/self/task/{task}/status") as status:
        return next(line.split()[1] for line in status if line.startswith("Cpus_allowed_list"))

share = None if sys.argv[1] == "all" else int(sys.argv[1])
process_pool.limit_cpus(share)
mask = allowed(os.getpid())
before = tasks()
jax_device(torch.device("cpu"))  # starts JAX's backends, as a dys-jfb-jax cell does
started = tasks() - before
print(json.dumps({"started": len(started),
                  "widened": all(allowed(t) == mask for t in tasks() if os.path.exists(
                      f"/proc/self/task/{t}"))}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and at least two CPUs")
def test_a_cell_given_one_thread_starts_jax_with_a_pool_of_one() -> None:
    """XLA sizes its CPU pool by the CPUs it may run on, whatever PyTorch's threads; a cell
    given one thread starts it with fewer threads than one given every CPU, and every thread
    may still run on any of the process's CPUs."""
    def run(share: str) -> dict[str, int | bool]:
        out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, share], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    one, every = run("1"), run("all")
    assert one["started"] < every["started"]
    assert one["widened"] and every["widened"]
