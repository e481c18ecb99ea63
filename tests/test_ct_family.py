"""The CT family through the task seam: the scorer against scikit-image, and every method
fit and scored in-process on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from l2obench.methods.base import method_registry
from l2obench.problems.base import problem_registry
from l2obench.record import Budget
from l2obench.tasks.base import get_task

CT_METHODS = ["fbp", "tv-min", "unet", "ffpn", "l2o-jfb", "l2o-unrolled", "l2o-implicit"]
SMALL = {"size": 16, "n_train": 4, "n_val": 2, "n_test": 3}
QUICK = {"tv-min": {"max_iter": 20}, "unet": {"width": 4}, "ffpn": {"channels": 4, "max_iter": 5},
         "l2o-jfb": {"max_iter": 5, "restore_steps": 5},
         "l2o-implicit": {"max_iter": 5, "restore_steps": 5},
         "l2o-unrolled": {"K": 3, "restore_steps": 5}}


def test_the_ct_scores_are_scikit_images() -> None:
    problem = problem_registry.get("ct")(**SMALL)
    test = problem.generate().test
    rng = np.random.default_rng(0)
    outputs = np.clip(test.targets + 0.05 * rng.standard_normal(test.targets.shape), 0, 1)
    scores = get_task("ct").score(problem, test, outputs)
    n = problem.size
    ref_p = [peak_signal_noise_ratio(t.reshape(n, n).astype(np.float64), o.reshape(n, n),
                                     data_range=1) for t, o in zip(test.targets, outputs,
                                                                   strict=True)]
    ref_s = [structural_similarity(t.reshape(n, n).astype(np.float64), o.reshape(n, n),
                                   data_range=1) for t, o in zip(test.targets, outputs,
                                                                 strict=True)]
    assert scores.values["psnr"] == pytest.approx(np.mean(ref_p), rel=1e-9)
    assert scores.values["ssim"] == pytest.approx(np.mean(ref_s), rel=1e-9)
    assert scores.values["box_violation"] == 0.0
    worse = get_task("ct").score(problem, test, outputs + 0.5)
    assert worse.values["box_violation"] == 1.0 and worse.values["fidelity_violation"] == 1.0


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "unet" else n
                                  for n in CT_METHODS])
def test_every_ct_method_fits_and_is_scored(name: str) -> None:
    problem = problem_registry.get("ct")(**SMALL)
    data = problem.generate()
    method = method_registry.get(name)(problem, torch.device("cpu"), 0, **QUICK.get(name, {}))
    fit = method.fit(data, Budget(max_epochs=1))
    assert fit.val_score is not None and np.isfinite(fit.val_score)
    scores = get_task("ct").score(problem, data.test, method.predict(data.test.features))
    psnr = scores.values["psnr"]
    assert psnr is not None and np.isfinite(psnr)
