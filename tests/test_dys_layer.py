"""Tests of the DYS layer package against references computed independently of it.

References: the projection against ``np.linalg.pinv``; converged layer outputs against HiGHS
(through ``scipy.optimize.linprog``); JFB gradients against central finite differences of the
converged layer and against the closed form ``∂x/∂w = −α D M`` of docs/methods.md; solver
iteration counts against the closed form for a scalar contraction. LPs are built here, so the
tests depend on no l2obench module but the layers and ``LPForm``.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import linprog
from torch import Tensor

from l2obench.implicit.backward import JFB
from l2obench.implicit.fixed_point import Anderson, FixedPointStats, Picard
from l2obench.layers.dys import DYSLayer
from l2obench.layers.projections import AffineForm, AffineProjection, BoxProjection
from l2obench.problems.base import LPForm
from l2obench.problems.shortest_path import ShortestPath

F64 = torch.float64


def grid_lp(k: int, sense: str = "min") -> LPForm:
    """Shortest path from the top-left to the bottom-right node of a ``k × k`` grid.

    Arcs go right ``(v, v+1)`` and down ``(v, v+k)``; ``A[tail, e] = −1``, ``A[head, e] = +1``,
    one unit leaves node 0 and arrives at node ``k² − 1``; ``0 ≤ x ≤ 1``.
    """
    rows, cols, arcs = [], [], []
    for v in range(k * k):
        i, j = divmod(v, k)
        if j < k - 1:
            arcs.append((v, v + 1))
        if i < k - 1:
            arcs.append((v, v + k))
    for e, (tail, head) in enumerate(arcs):
        rows += [tail, head]
        cols += [e, e]
    vals = [-1.0, 1.0] * len(arcs)
    A = sp.csr_matrix((vals, (rows, cols)), shape=(k * k, len(arcs)))
    b = np.zeros(k * k)
    b[0], b[-1] = -1.0, 1.0
    n = len(arcs)
    return LPForm(A=A, b=b, lower=np.zeros(n), upper=np.ones(n), sense=sense)  # type: ignore[arg-type]


def top_right_path(k: int, lp: LPForm) -> Tensor:
    """The 0/1 arc vector of the path right along the top row, then down the last column."""
    A = lp.A.toarray()
    x = torch.zeros(lp.n_vars, dtype=F64)
    v = 0
    while v != k * k - 1:
        nxt = v + 1 if v % k < k - 1 else v + k
        x[int(np.flatnonzero((A[v] == -1) & (A[nxt] == 1))[0])] = 1.0
        v = nxt
    return x


def pinv_projection(A: np.ndarray, b: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Reference: ``v − A⁺(A v − b)`` row by row, with NumPy's SVD pseudo-inverse."""
    return V - (np.linalg.pinv(A) @ (A @ V.T - b[:, None])).T


# --- projections ------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["dense", "factored"])
@pytest.mark.parametrize("case", ["grid4", "random_full_rank"])
def test_affine_projection_matches_pinv(form: str, case: str) -> None:
    rng = np.random.default_rng(0)
    if case == "grid4":  # rank-deficient: rank n_nodes − 1
        lp = grid_lp(4)
        A, b = lp.A.toarray(), lp.b
    else:
        A = rng.standard_normal((5, 12))
        b = rng.standard_normal(5)
    proj = AffineProjection(sp.csr_matrix(A), b, dtype=F64, form=form)  # type: ignore[arg-type]
    assert proj.form == form
    V = rng.standard_normal((7, A.shape[1])) * 3.0
    X = proj(torch.as_tensor(V)).numpy()

    np.testing.assert_allclose(A @ X.T, np.repeat(b[:, None], len(V), axis=1), atol=1e-6)
    np.testing.assert_allclose(proj(torch.as_tensor(X)).numpy(), X, atol=1e-10)  # idempotent
    np.testing.assert_allclose(X, pinv_projection(A, b, V), atol=1e-10)


def path_laplacian_nx(k: int) -> np.ndarray:
    """Reference Laplacian of a ``k``-node path, from networkx."""
    return nx.laplacian_matrix(nx.path_graph(k)).toarray().astype(float)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_kronecker_projection_matches_pinv(k: int) -> None:
    """A grid's A Aᵀ is the Kronecker sum of two path Laplacians: same map as an SVD pinv."""
    lp = grid_lp(k)
    A, b = lp.A.toarray(), lp.b
    L = path_laplacian_nx(k)
    proj = AffineProjection(lp.A, b, dtype=F64, form="kronecker", gram_kronecker=(L, L))
    assert proj.form == "kronecker"
    V = np.random.default_rng(k).standard_normal((5, lp.n_vars)) * 3.0
    X = proj(torch.as_tensor(V)).numpy()
    np.testing.assert_allclose(X, pinv_projection(A, b, V), atol=1e-10)
    v = torch.as_tensor(V[:2], dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(proj, (v,))


def test_kronecker_declaration_is_checked() -> None:
    lp = grid_lp(4)
    wrong = path_laplacian_nx(4) * 2.0
    with pytest.raises(ValueError, match="not L₁ ⊗ I"):
        AffineProjection(lp.A, lp.b, form="kronecker", gram_kronecker=(wrong, wrong))
    with pytest.raises(ValueError, match="do not fit"):
        L3 = path_laplacian_nx(3)
        AffineProjection(lp.A, lp.b, form="kronecker", gram_kronecker=(L3, L3))
    with pytest.raises(ValueError, match="needs an LP that declares"):
        AffineProjection(lp.A, lp.b, form="kronecker")


def test_affine_projection_auto_form_follows_size_and_device() -> None:
    cases = [(512, "cpu", "dense"), (513, "cpu", "factored")]
    if torch.cuda.is_available():
        cases += [(2048, "cuda", "dense"), (2049, "cuda", "factored")]
    for n, device, form in cases:
        proj = AffineProjection(sp.csr_matrix(np.ones((1, n))), np.ones(1), device=device)
        assert proj.form == form
        x = proj(torch.zeros(2, n, device=device))
        torch.testing.assert_close(x, torch.full((2, n), 1.0 / n, device=device))
    grid17 = ShortestPath(k=17).lp()  # 544 arcs, A Aᵀ declared as a Kronecker sum
    assert AffineProjection.from_lp(grid17).form == "grid"


def test_affine_projection_gradient_is_the_projector() -> None:
    lp = grid_lp(3)
    dense = AffineProjection.from_lp(lp, dtype=F64, form="dense")
    factored = AffineProjection.from_lp(lp, dtype=F64, form="factored")
    v = torch.randn(3, lp.n_vars, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(factored, (v,))
    g = torch.randn(3, lp.n_vars, dtype=F64)
    (grad_f,) = torch.autograd.grad(factored(v), v, g)
    (grad_d,) = torch.autograd.grad(dense(v), v, g)
    A = lp.A.toarray()
    M = np.eye(lp.n_vars) - np.linalg.pinv(A) @ A
    np.testing.assert_allclose(grad_f.numpy(), g.numpy() @ M, atol=1e-10)
    np.testing.assert_allclose(grad_d.numpy(), g.numpy() @ M, atol=1e-10)


def test_box_projection_and_mask() -> None:
    box = BoxProjection(np.array([0.0, -np.inf, 0.0]), np.array([1.0, 2.0, np.inf]), dtype=F64)
    z = torch.tensor([[-1.0, -5.0, 3.0], [0.5, 3.0, -2.0]], dtype=F64)
    expected = torch.tensor([[0.0, -5.0, 3.0], [0.5, 2.0, 0.0]], dtype=F64)
    assert torch.equal(box(z), expected)
    assert box.jacobian_mask(z).tolist() == [[False, True, True], [True, False, False]]


# --- converged layer against an LP solver -----------------------------------------------------


@pytest.mark.parametrize("k", [3, 4])
def test_converged_dys_matches_highs(k: int) -> None:
    lp = grid_lp(k)
    rng = np.random.default_rng(k)
    W = rng.uniform(1.0, 2.0, size=(4, lp.n_vars))
    # α = 1 is well inside 0 < α < 2/γ and converges in a few thousand steps at γ = 1e-3.
    solver = Picard(tol=1e-6, max_iter=50_000)
    layer = DYSLayer(lp, alpha=1.0, gamma=1e-3, solver=solver, dtype=F64)
    with torch.no_grad():
        X, stats = layer(torch.as_tensor(W))
    X = X.numpy()
    assert bool(stats.converged.all())

    for w, x in zip(W, X, strict=True):
        ref = linprog(
            w,
            A_eq=lp.A,
            b_eq=lp.b,
            bounds=list(zip(lp.lower, lp.upper, strict=True)),
            method="highs",
        )
        assert ref.status == 0
        assert abs(w @ x - ref.fun) <= 0.01 * abs(ref.fun)
        assert np.abs(lp.A @ x - lp.b).max() <= 1e-4
        assert (x >= lp.lower).all() and (x <= lp.upper).all()

    # sense "max" of −w is the same problem: the layer negates the costs itself.
    layer_max = DYSLayer(grid_lp(k, "max"), alpha=1.0, gamma=1e-3, solver=solver, dtype=F64)
    with torch.no_grad():
        X_max = layer_max(-torch.as_tensor(W))[0].numpy()
    np.testing.assert_allclose(X_max, X, atol=1e-8)


def test_converged_dys_is_kkt_optimal_for_the_regularised_problem() -> None:
    """With γ = 0.5 and costs of both signs bounds are active but x is not a vertex.

    Optimality certificate for ``min wᵀx + (γ/2)‖x‖²`` over ``A x = b, 0 ≤ x ≤ 1``: a multiplier
    ``λ`` with ``g + Aᵀλ`` zero on the free arcs, ``≥ 0`` at the lower bound and ``≤ 0`` at the
    upper bound, ``g = w + γx``. Its existence is an LP feasibility problem, solved by HiGHS.
    """
    lp = grid_lp(4)
    A, gamma, tol = lp.A.toarray(), 0.5, 1e-7
    W = np.random.default_rng(0).uniform(-1.0, 1.0, size=(6, lp.n_vars))
    solver = Picard(tol=1e-11, max_iter=100_000)
    layer = DYSLayer(lp, alpha=1.0, gamma=gamma, solver=solver, dtype=F64)
    with torch.no_grad():
        X, stats = layer(torch.as_tensor(W))
    X = X.numpy()
    assert bool(stats.converged.all())

    for w, x in zip(W, X, strict=True):
        g = w + gamma * x
        free, at_lower, at_upper = (x > tol) & (x < 1 - tol), x <= tol, x >= 1 - tol
        assert free.any() and at_lower.any()
        certificate = linprog(
            np.zeros(A.shape[0]),
            A_eq=A[:, free].T,
            b_eq=-g[free],
            A_ub=np.vstack([-A[:, at_lower].T, A[:, at_upper].T]),
            b_ub=np.concatenate([g[at_lower] + tol, -g[at_upper] + tol]),
            bounds=(None, None),
            method="highs",
        )
        assert certificate.status == 0, certificate.message


# --- JFB gradients ----------------------------------------------------------------------------


def test_jfb_gradient_is_a_descent_direction() -> None:
    """JFB's dℓ/dw against central differences of the converged layer, for 5 cost vectors.

    γ = 0.5 (with α = 1) keeps the solution off the LP's vertices, so x(w) is smooth enough for
    finite differences and its derivative is not zero; tol = 1e-11 makes the solve error far below
    eps · ‖∇ℓ‖ for eps = 1e-4, while eps stays large against float64 rounding.
    """
    k, eps, n_inst = 3, 1e-4, 5
    lp = grid_lp(k)
    n = lp.n_vars
    layer = DYSLayer(
        lp, alpha=1.0, gamma=0.5, solver=Picard(tol=1e-11, max_iter=100_000), dtype=F64
    )
    target = top_right_path(k, lp)
    w = torch.rand(n_inst, n, dtype=F64, generator=torch.Generator().manual_seed(0))

    w_req = w.clone().requires_grad_(True)
    ((layer(w_req)[0] - target) ** 2).sum().backward()
    assert w_req.grad is not None
    jfb = w_req.grad

    # All 2·n perturbations of all instances in one batch: rows (i, j, ±).
    steps = eps * torch.eye(n, dtype=F64)
    W_pert = torch.cat([w[:, None, :] + steps, w[:, None, :] - steps], dim=1).reshape(-1, n)
    with torch.no_grad():
        x_pert, stats = layer(W_pert)
        loss = ((x_pert - target) ** 2).sum(dim=1).reshape(n_inst, 2, n)
    assert bool(stats.converged.all())
    fd = (loss[:, 0] - loss[:, 1]) / (2 * eps)

    assert (fd.norm(dim=1) > 1e-2).all(), fd.norm(dim=1)
    inner = (jfb * fd).sum(dim=1)
    assert (inner > 0).all(), inner


def test_jfb_gradient_matches_closed_form() -> None:
    """One taped application: dx/dw = D (−α M) with D the clamp's mask at the output."""
    lp = grid_lp(4)
    alpha, gamma = 1.0, 0.5
    layer = DYSLayer(
        lp,
        alpha=alpha,
        gamma=gamma,
        solver=Picard(tol=1e-10, max_iter=100_000),
        backward=JFB(),
        dtype=F64,
    )
    gen = torch.Generator().manual_seed(1)
    w = torch.rand(3, lp.n_vars, dtype=F64, generator=gen).requires_grad_(True)
    g = torch.randn(3, lp.n_vars, dtype=F64, generator=gen)
    x, _ = layer(w)
    (grad,) = torch.autograd.grad(x, w, g)

    A = lp.A.toarray()
    M = np.eye(lp.n_vars) - np.linalg.pinv(A) @ A
    D = layer.box.jacobian_mask(x.detach()).numpy()  # lower < z < upper  ⇔  lower < x < upper
    assert 0 < D.sum() < D.size  # both active and inactive bounds occur
    expected = -alpha * (D * g.numpy()) @ M
    np.testing.assert_allclose(grad.numpy(), expected, atol=1e-10)


# --- the fixed-point solver -------------------------------------------------------------------


def scalar_contraction(sizes: list[int]) -> tuple[Callable[[Tensor, Tensor], Tensor], Tensor]:
    """``fn(z, a) = a z + 1`` (fixed point ``1/(1 − a)``), recording each call's batch size."""

    def fn(z: Tensor, a: Tensor) -> Tensor:
        sizes.append(z.shape[0])
        return a * z + 1.0

    return fn, torch.tensor([[0.1], [0.5]], dtype=F64)


def test_picard_stops_each_instance_and_shrinks_the_batch() -> None:
    # From z0 = 0 every entry of z_k − z_{k−1} is a^(k−1); with 4 entries the norm is 2 a^(k−1).
    # tol = 4e-3 stops a = 0.1 at k = 4 (2e-3) and a = 0.5 at k = 10 (3.9e-3), away from ties.
    sizes: list[int] = []
    fn, a = scalar_contraction(sizes)
    z_star, stats = Picard(tol=4e-3, max_iter=100)(fn, torch.zeros(2, 4, dtype=F64), (a,))
    assert stats.iterations.tolist() == [4, 10]
    assert stats.converged.tolist() == [True, True]
    assert sizes == [2] * 4 + [1] * 6  # the converged instance left the batch
    for i, k in enumerate([4, 10]):
        ai = float(a[i])
        np.testing.assert_allclose(z_star[i].numpy(), (1 - ai**k) / (1 - ai), rtol=1e-14)


def test_picard_respects_max_iter() -> None:
    sizes: list[int] = []
    fn, a = scalar_contraction(sizes)
    z_star, stats = Picard(tol=1e-12, max_iter=5)(fn, torch.zeros(2, 1, dtype=F64), (a,))
    assert stats.iterations.tolist() == [5, 5]
    assert stats.converged.tolist() == [False, False]
    assert len(sizes) == 5
    np.testing.assert_allclose(z_star[:, 0].numpy(), ((1 - a**5) / (1 - a))[:, 0].numpy())


@pytest.mark.parametrize("bad", [{"tol": 0.0}, {"max_iter": 0}])
def test_picard_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Picard(**bad)  # type: ignore[arg-type]


def test_anderson_solves_a_slow_linear_iteration_in_few_steps() -> None:
    # z ← a z + 1 with a = 0.999 (and 0.5): Picard needs thousands of steps, while Anderson with
    # two residuals extrapolates a scalar linear map almost exactly (a regularised secant step).
    a = torch.tensor([[0.999], [0.5]], dtype=F64)

    def fn(z: Tensor, a: Tensor) -> Tensor:
        return a * z + 1.0

    z0 = torch.zeros(2, 3, dtype=F64)
    z_p, stats_p = Picard(tol=1e-8, max_iter=100_000)(fn, z0, (a,))
    z_a, stats_a = Anderson(tol=1e-8, max_iter=100, memory=3)(fn, z0, (a,))
    expected = (1.0 / (1.0 - a)).expand(2, 3)
    torch.testing.assert_close(z_a, expected, rtol=1e-9, atol=0)
    torch.testing.assert_close(z_p, expected, rtol=1e-4, atol=0)
    assert stats_a.converged.all()
    assert int(stats_a.iterations.max()) <= 10 < 1000 < int(stats_p.iterations[0])


def test_anderson_reaches_picards_fixed_point_on_the_layer() -> None:
    lp = grid_lp(4)
    W = torch.as_tensor(np.random.default_rng(1).uniform(0.5, 2.0, size=(5, lp.n_vars)))
    kw = {"alpha": 0.5, "gamma": 1e-3, "dtype": F64}  # slow enough for Picard to crawl
    picard = DYSLayer(lp, solver=Picard(tol=1e-10, max_iter=200_000), **kw)  # type: ignore[arg-type]
    anderson = DYSLayer(lp, solver=Anderson(tol=1e-10, max_iter=200_000), **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        (x_p, stats_p), (x_a, stats_a) = picard(W), anderson(W)
    assert stats_a.converged.all()
    torch.testing.assert_close(x_a, x_p, atol=1e-7, rtol=0)
    assert stats_a.iterations.max() < stats_p.iterations.max()


@pytest.mark.parametrize("bad", [{"tol": 0.0}, {"max_iter": 0}, {"memory": 0}, {"ridge": -1.0}])
def test_anderson_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Anderson(**bad)  # type: ignore[arg-type]


def test_layer_per_instance_stopping_matches_solo_solves() -> None:
    lp = grid_lp(4)
    layer = DYSLayer(lp, alpha=1.0, gamma=1e-3, solver=Picard(tol=1e-6, max_iter=50_000), dtype=F64)
    W = torch.as_tensor(np.random.default_rng(0).uniform(1.0, 2.0, size=(3, lp.n_vars)))
    with torch.no_grad():
        X, stats = layer(W)
        assert isinstance(stats, FixedPointStats)
        iters = stats.iterations.tolist()
        assert len(set(iters)) > 1 and max(iters) > 2 * min(iters), iters  # easy and hard mixed
        for i in range(len(W)):
            x_alone, alone = layer(W[i : i + 1])
            assert alone.iterations.tolist() == [iters[i]]
            torch.testing.assert_close(x_alone[0], X[i], atol=1e-6, rtol=0)


# --- device and dtype -------------------------------------------------------------------------


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("form", ["dense", "factored"])
def test_layer_device_and_dtype_are_parameters(device: str, form: AffineForm) -> None:
    lp = grid_lp(3)
    w64 = torch.rand(4, lp.n_vars, dtype=F64, generator=torch.Generator().manual_seed(0)) + 0.5
    solver = Picard(tol=1e-8, max_iter=20_000)
    ref = DYSLayer(lp, gamma=0.1, alpha=1.0, solver=solver, dtype=F64, affine_form=form)
    with torch.no_grad():
        x_ref, _ = ref(w64)

    layer = DYSLayer(
        lp, gamma=0.1, alpha=1.0, solver=solver, dtype=F64, device=device, affine_form=form
    )
    assert all(buf.device.type == device and buf.dtype == F64 for buf in layer.buffers())
    w_req = w64.to(device).requires_grad_(True)
    x, _ = layer(w_req)
    assert x.device.type == device and x.dtype == F64
    x.sum().backward()
    assert w_req.grad is not None and w_req.grad.device.type == device
    torch.testing.assert_close(x.detach().cpu(), x_ref, atol=1e-10, rtol=0)

    solver32 = Picard(tol=1e-5, max_iter=20_000)  # float32 cannot reach 1e-8
    layer32 = DYSLayer(lp, gamma=0.1, alpha=1.0, solver=solver32, device=device, affine_form=form)
    with torch.no_grad():
        x32, _ = layer32(w64.to(device=device, dtype=torch.float32))
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32.cpu(), x_ref.float(), atol=1e-3, rtol=0)

    # Buffers, the sparse ones included, follow .to(); they keep their float32 rounding.
    moved = layer32.to(F64)
    moved.solver = solver
    assert all(buf.dtype == F64 for buf in moved.buffers())
    with torch.no_grad():
        torch.testing.assert_close(moved(w64.to(device))[0].cpu(), x_ref, atol=1e-5, rtol=0)


def test_layer_rejects_mismatched_costs() -> None:
    layer = DYSLayer(grid_lp(3), dtype=F64)
    with pytest.raises(ValueError, match="shape"):
        layer(torch.zeros(2, 5, dtype=F64))
    with pytest.raises(ValueError, match="dtype"):
        layer(torch.zeros(2, 12, dtype=torch.float32))


# --- the structured forms, the fused step and the solver's levers against the old paths -------

FORMS = ["dense", "factored", "kronecker", "grid", "dct"]


def grid_lps(k: int) -> list[tuple[str, LPForm]]:
    """A k×k grid in two arc orders: PyEPO's (the arc fields are strided views of a row) and
    node by node (they are gathered), both declaring their Kronecker-sum Gram matrix."""
    L = path_laplacian_nx(k)
    node_order = grid_lp(k)
    node_order = LPForm(A=node_order.A, b=node_order.b, lower=node_order.lower,
                        upper=node_order.upper, sense="min", gram_kronecker=(L, L))
    return [("pyepo", ShortestPath(k=k).lp()), ("node-order", node_order)]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_every_form_is_the_pinv_projection_on_grids(form: str, k: int) -> None:
    for _, lp in grid_lps(k):
        A, b = lp.A.toarray(), lp.b
        proj = AffineProjection.from_lp(lp, dtype=F64, form=form)  # type: ignore[arg-type]
        assert proj.form == form
        V = np.random.default_rng(k).standard_normal((5, lp.n_vars)) * 3.0
        np.testing.assert_allclose(proj(torch.as_tensor(V)).numpy(), pinv_projection(A, b, V),
                                   atol=1e-10)
        v = torch.as_tensor(V[:2]).requires_grad_()
        assert torch.autograd.gradcheck(proj, (v,))
        assert torch.autograd.gradgradcheck(proj.complement, (v,))
        y = torch.randn(3, A.shape[0], dtype=F64)
        d = torch.rand(3, lp.n_vars, dtype=F64)
        torch.testing.assert_close(proj.constraint(torch.as_tensor(V)), torch.as_tensor(V @ A.T))
        torch.testing.assert_close(proj.constraint_t(y), y @ torch.as_tensor(A))
        torch.testing.assert_close(proj.constraint_abs(d), d @ torch.as_tensor(A * A).T)


def test_grid_layouts_are_recognised() -> None:
    strided = {name: AffineProjection.from_lp(lp, form="grid").strides is not None
               for name, lp in grid_lps(4)}
    assert strided == {"pyepo": True, "node-order": False}


def test_grid_forms_need_a_grid_incidence_matrix() -> None:
    L = path_laplacian_nx(3)
    lp = grid_lp(3)
    flipped = sp.csr_matrix(-lp.A.toarray())  # same A Aᵀ, arcs pointing the other way
    AffineProjection(flipped, lp.b, form="kronecker", gram_kronecker=(L, L))  # still fine
    for form in ("grid", "dct"):
        with pytest.raises(ValueError, match="needs"):
            AffineProjection(flipped, lp.b, form=form, gram_kronecker=(L, L))
    # A Kronecker sum of factors that are not path Laplacians: grid, but no DCT basis.
    L2 = np.array([[1.0, -1.0], [-1.0, 1.0]])
    weighted = AffineProjection(grid_lp(2).A, grid_lp(2).b, form="grid", gram_kronecker=(L2, L2))
    assert weighted.form == "grid"


def old_operator(layer: DYSLayer, z: Tensor, shift: Tensor) -> Tensor:
    """The operator as written before the fused step: ``z − x + M(2x − z − αγx) + shift``."""
    x = torch.clamp(z, layer.box.lower, layer.box.upper)
    y = layer.aff.linear((2.0 - layer.alpha * layer.gamma) * x - z) + shift
    return z - x + y


@pytest.mark.parametrize("form", FORMS)
def test_fused_step_and_its_backward_equal_the_plain_operator(form: str) -> None:
    lp = ShortestPath(k=4).lp()
    layer = DYSLayer(lp, alpha=0.3, gamma=0.2, dtype=F64, affine_form=form)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(0)
    z = (torch.rand(6, lp.n_vars, dtype=F64, generator=gen) * 1.6 - 0.3).requires_grad_()
    z.data[0, :3] = torch.tensor([0.0, 1.0, 0.5], dtype=F64)  # on the bounds: clamp's convention
    shift = torch.randn(6, lp.n_vars, dtype=F64, generator=gen).requires_grad_()
    with torch.no_grad():
        torch.testing.assert_close(layer.operator(z, shift), old_operator(layer, z, shift))
    g = torch.randn(6, lp.n_vars, dtype=F64, generator=gen)
    new = torch.autograd.grad(layer.operator(z, shift), (z, shift), g)
    old = torch.autograd.grad(old_operator(layer, z, shift), (z, shift), g)
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b)
    inside = (z[1:3].detach() + 1e-3).requires_grad_()  # away from the clamp's kinks
    assert torch.autograd.gradcheck(layer.operator, (inside, shift[1:3]))
    assert torch.autograd.gradgradcheck(layer.operator, (inside, shift[1:3]))


@pytest.mark.parametrize("form", FORMS)
def test_every_form_reaches_the_same_fixed_points(form: str) -> None:
    lp = ShortestPath(k=5).lp()
    W = torch.as_tensor(np.random.default_rng(2).uniform(0.5, 2.0, size=(6, lp.n_vars)))
    solver = Picard(tol=1e-9, max_iter=100_000)
    ref = DYSLayer(lp, alpha=1.0, gamma=1e-2, solver=solver, dtype=F64, affine_form="dense")
    layer = DYSLayer(lp, alpha=1.0, gamma=1e-2, solver=solver, dtype=F64, affine_form=form)  # type: ignore[arg-type]
    with torch.no_grad():
        (x_ref, s_ref), (x, s) = ref(W), layer(W)
    torch.testing.assert_close(x, x_ref, atol=1e-8, rtol=0)
    assert s.iterations.tolist() == s_ref.iterations.tolist()


@pytest.mark.parametrize("solver_cls", [Picard, Anderson])
def test_check_interval_and_chunks_do_not_change_the_solve(solver_cls: type) -> None:
    lp = ShortestPath(k=4).lp()
    W = torch.as_tensor(np.random.default_rng(3).uniform(0.5, 2.0, size=(9, lp.n_vars)))
    kw = {"alpha": 1.0, "gamma": 1e-2, "dtype": F64}
    base = DYSLayer(lp, solver=solver_cls(tol=1e-7, max_iter=20_000), **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        x_ref, s_ref = base(W)
        for levers in ({"check_every": 7}, {"chunk": 2}, {"chunk": 4, "check_every": 3}):
            layer = DYSLayer(lp, solver=solver_cls(tol=1e-7, max_iter=20_000, **levers), **kw)  # type: ignore[arg-type]
            x, s = layer(W)
            assert s.iterations.tolist() == s_ref.iterations.tolist(), levers
            assert s.converged.tolist() == s_ref.converged.tolist()
            torch.testing.assert_close(x, x_ref, atol=1e-12, rtol=0)
            assert s.z_star is not None and s.z_star.shape == W.shape


def test_check_interval_keeps_max_iter_and_the_first_stopping_step() -> None:
    sizes: list[int] = []
    fn, a = scalar_contraction(sizes)
    z_star, stats = Picard(tol=4e-3, max_iter=100, check_every=3)(
        fn, torch.zeros(2, 4, dtype=F64), (a,))
    assert stats.iterations.tolist() == [4, 10]  # as with a look every step
    assert sizes == [2] * 6 + [1] * 6  # the first instance left at the look after step 6
    np.testing.assert_allclose(z_star[0].numpy(), (1 - 0.1**4) / 0.9, rtol=1e-14)
    _, capped = Picard(tol=1e-12, max_iter=5, check_every=3)(fn, torch.zeros(2, 1, dtype=F64), (a,))
    assert capped.iterations.tolist() == [5, 5] and not capped.converged.any()
    for bad in ({"check_every": 0}, {"chunk": 0}):
        with pytest.raises(ValueError):
            Picard(**bad)


def test_warm_start_at_a_fixed_point_stops_at_once() -> None:
    lp = ShortestPath(k=4).lp()
    W = torch.as_tensor(np.random.default_rng(4).uniform(0.5, 2.0, size=(5, lp.n_vars)))
    layer = DYSLayer(lp, alpha=1.0, gamma=1e-2, solver=Picard(tol=1e-8, max_iter=50_000),
                     dtype=F64)
    with torch.no_grad():
        x, stats = layer(W)
        assert stats.z_star is not None
        x_warm, warm = layer(W, stats.z_star)
    assert int(stats.iterations.min()) > 5 and warm.iterations.tolist() == [1] * 5
    torch.testing.assert_close(x_warm, x, atol=1e-7, rtol=0)


def test_uniform_bounds_clamp_as_the_bound_tensors() -> None:
    box = BoxProjection(np.zeros(4), np.ones(4), dtype=F64)
    assert box.uniform == (0.0, 1.0)
    z = torch.tensor([[-1.0, 0.0, 0.5, 1.0], [2.0, 1.0, 0.0, 0.3]], dtype=F64)
    assert torch.equal(box(z), torch.clamp(z, box.lower, box.upper))
    assert box.derivative_mask(z).tolist() == [[False, True, True, True], [False, True, True, True]]
    mixed = BoxProjection(np.array([0.0, 0.0]), np.array([1.0, np.inf]), dtype=F64)
    assert mixed.uniform is None
    assert torch.equal(mixed(z[:, :2]), torch.clamp(z[:, :2], mixed.lower, mixed.upper))
