"""Scoring against scikit-learn's metrics, and every training mode on tiny data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from l2obench.errors import ParameterError, UnknownNameError
from l2obench.implicit.backward import JFB, Implicit, Unrolled
from l2obench.methods.base import method_registry
from l2obench.record import Budget, Cell
from l2obench.runner import run_cell
from l2obench.tasks.base import get_task
from l2obench.tasks.classification.datasets import load_dataset
from l2obench.tasks.classification.fit import fit_classifier, predict_logits
from l2obench.tasks.classification.modes import (
    MODES,
    ModeSettings,
    build_classifier,
    make_backward,
)
from l2obench.tasks.classification.network import Architecture, ImplicitClassifier
from l2obench.tasks.classification.problem import ImageClassification
from l2obench.tasks.classification.scoring import score
from l2obench.tasks.classification.splits import ClassificationData

CPU = torch.device("cpu")


def val_accuracy(net: ImplicitClassifier, data: ClassificationData) -> float:
    logits = predict_logits(net, data.val.x, batch_size=64, device=CPU)
    return score(logits, data.val.y).summary()["accuracy"]


def test_scores_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4)) * 3
    labels = rng.integers(0, 4, 200)
    scores = score(logits, labels)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert scores.summary()["accuracy"] == accuracy_score(labels, logits.argmax(axis=1))
    assert scores.summary()["cross_entropy"] == pytest.approx(
        log_loss(labels, probs, labels=range(4)), rel=1e-9)
    big = score(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    np.testing.assert_allclose(big.cross_entropy, [0.0, 1000.0])
    np.testing.assert_array_equal(big.correct, [1.0, 0.0])


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros((3, 2)), np.array([0, 1]), "do not match"),
    (np.zeros((2, 2)), np.array([0, 2]), "range"),
    (np.array([[np.nan, 0.0]]), np.array([0]), "NaN"),
])
def test_bad_scores_are_refused(logits: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(logits, labels)


@pytest.fixture(scope="module")
def tiny_data() -> ClassificationData:
    return load_dataset("mnist1d", seed=0, n_samples=120)


def test_every_mode_starts_from_the_same_parameters() -> None:
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    nets = [build_classifier((1, 12), 3, Architecture(width=3), mode, ModeSettings(), seed=7)
            for mode in MODES]
    assert torch.equal(torch.rand(1), expected_next)  # the global generator untouched
    for net in nets[1:]:
        for a, b in zip(nets[0].parameters(), net.parameters(), strict=True):
            assert torch.equal(a, b)
    other = build_classifier((1, 12), 3, Architecture(width=3), "jfb", ModeSettings(), seed=8)
    assert not torch.equal(next(other.parameters()), next(nets[0].parameters()))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_trains(tiny_data: ClassificationData, mode: str) -> None:
    settings = ModeSettings(unroll_steps=3)
    net = build_classifier(tiny_data.input_shape, 10, Architecture(width=4), mode, settings,
                           seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    run = fit_classifier(net, tiny_data.train, Budget(max_epochs=2),
                         validate=lambda: val_accuracy(net, tiny_data), direction="max", lr=1e-2,
                         batch_size=32, seed=0, device=CPU)
    assert run.epochs == 2 and len(run.history) == 2 and run.best_epoch in (1, 2)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    expected_iters = {"unrolled": 3.0, "explicit": 1.0}.get(mode)
    assert run.fwd_iters_mean is not None and run.fwd_iters_mean >= 1
    if expected_iters is not None:
        assert run.fwd_iters_mean == expected_iters
    assert (run.bwd_iters_mean is not None) == (mode == "jacobian")
    logits = predict_logits(net, tiny_data.test.x, batch_size=16, device=CPU)
    assert logits.shape == (len(tiny_data.test), 10) and np.isfinite(logits).all()


def test_unconverged_adjoint_solves_are_counted(tiny_data: ClassificationData) -> None:
    settings = ModeSettings(cg_tol=1e-12, cg_max_iter=1)
    net = build_classifier(tiny_data.input_shape, 10, Architecture(width=4, contraction=0.9),
                           "jacobian", settings, seed=0)
    run = fit_classifier(net, tiny_data.train, Budget(max_epochs=1),
                         validate=lambda: val_accuracy(net, tiny_data), direction="max", lr=1e-2,
                         batch_size=32, seed=0, device=CPU)
    assert run.bwd_unconverged == 3  # every step of the epoch's 3 batches
    assert run.bwd_iters_mean == 1


def test_modes_are_the_shared_machinery() -> None:
    settings = ModeSettings(cg_tol=1e-6, cg_max_iter=7, unroll_steps=4)
    assert isinstance(make_backward("jfb", settings), JFB)
    implicit = make_backward("jacobian", settings)
    assert isinstance(implicit, Implicit) and implicit.linear_solver.max_iter == 7
    assert make_backward("unrolled", settings) == Unrolled(K=4)
    assert make_backward("explicit", settings) == Unrolled(K=1)


@pytest.mark.parametrize("build, message", [
    (lambda: ModeSettings(cg_tol=0), "cg_tol must be positive, not 0"),
    (lambda: ModeSettings(forward_max_iter=0), "forward_max_iter must be at least 1"),
    (lambda: ModeSettings(unroll_steps=-1), "unroll_steps must be at least 1"),
    (lambda: Architecture(width=0), "width must be at least 1"),
    (lambda: Architecture(contraction=1.0), r"contraction must lie in \(0, 1\)"),
    (lambda: Architecture(kernel=2), "kernel must be an odd"),
])
def test_bad_parameters_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        build()


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'jfb'"):
        make_backward("jbf", ModeSettings())


@pytest.mark.parametrize("name", [
    "implicit-jfb", *(pytest.param(n, marks=pytest.mark.slow)  # the modes train above
                      for n in ("implicit-jacobian", "implicit-unrolled", "explicit")),
])
def test_every_method_runs_as_a_cell(name: str) -> None:
    """Through the runner: the problem's data, the method's fit and predict, the task's
    scores against the labels (accuracy per instance in the record)."""
    problem_params = ImageClassification.validate(
        {"width": 4, "n_train": 60, "n_val": 20, "n_test": 30})
    cell = Cell(suite="t", problem="classification", size_param="width",
                problem_params=problem_params, method=name,
                method_params=method_registry.get(name).validate({"lr": 1e-2}),
                method_label=name, seed=0, device="cpu", budget=Budget(max_epochs=2))
    record = run_cell(cell)
    assert record.status == "ok", record.error
    assert record.metrics is not None and record.per_instance is not None
    accuracy, cross_entropy = record.metrics["accuracy"], record.metrics["cross_entropy"]
    assert accuracy is not None and 0.0 <= accuracy <= 1.0
    assert cross_entropy is not None and cross_entropy > 0.0
    correct = record.per_instance["test_correct"]
    assert len(correct) == 30 and set(correct) <= {0.0, 1.0}
    assert accuracy == pytest.approx(sum(correct) / 30)


def test_classification_task_refuses_bad_outputs() -> None:
    problem = ImageClassification(width=4, n_train=6, n_val=4, n_test=5)
    test = problem.generate().test
    task = get_task("classification")
    ideal = task.ideal_outputs(test)
    assert ideal is not None
    assert task.score(problem, test, ideal).values == {"accuracy": 1.0, "cross_entropy": 0.0}
    with pytest.raises(ValueError, match="shape"):
        task.score(problem, test, ideal[:, :3])
    with pytest.raises(FloatingPointError):
        task.score(problem, test, np.full_like(ideal, np.inf))
