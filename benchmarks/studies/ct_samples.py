"""Sample CT reconstructions: one test phantom as each method of the CT suite reconstructs it.

The figure the implicit-L2O papers show beside their tables (Heaton & Wu Fung, Sci. Rep. 2023,
Fig. 4): the ground truth, FBP, TV-min, the U-Net (FBPConvNet), F-FPN and the L2O model, each
captioned with its PSNR and SSIM. The records of ``l2obench run`` keep scores, not models, so
this script trains each learned method again on the suite's data at one side (the suite's
problem, split sizes and seed, the methods' defaults, l2obench's training loop with a budget
given here), reconstructs the test split, scores every image with the family's scorer
(:func:`l2obench.tasks.ct.scoring.psnr` and ``ssim``, scikit-image's definitions) and draws
one test image: by default the one whose PSNR under the L2O model is the median of the split,
so the figure is neither a best nor a worst case. The mean PSNR/SSIM over the split are
printed beside each caption's single-image figures.

Usage: ``python -m benchmarks.studies.ct_samples [--size 32] [--seconds 120]
[--out results/ct/ct-samples.png]``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from l2obench import Budget, method_registry
from l2obench.tasks.ct.problem import CTProblem
from l2obench.tasks.ct.scoring import psnr, ssim

log = logging.getLogger(__name__)

#: The panels in the papers' order, with the method parameters (TV: the bound the suite's
#: tuning selects at side 32).
PANELS: dict[str, dict[str, float]] = {
    "fbp": {}, "tv-min": {"fidelity": 0.02}, "unet": {}, "ffpn": {}, "l2o-jfb": {},
}


def reconstruct(size: int, seconds: float, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test images and each panel method's reconstructions of them, ``[N, size, size]``."""
    problem = CTProblem(size=size, seed=seed)
    data = problem.generate()
    truth = data.test.targets.reshape(-1, size, size).astype(np.float64)
    images = {}
    for name, params in PANELS.items():
        method = method_registry.get(name)(problem, torch.device("cpu"), seed, **params)
        fit = method.fit(data, Budget(max_epochs=50, max_seconds=seconds))
        log.info("%s: %d epochs, best %s", name, fit.epochs, fit.best_epoch)
        images[name] = method.predict(data.test.features).reshape(-1, size, size)
    return truth, images


def draw(truth: np.ndarray, images: dict[str, np.ndarray], out: Path, size: int,
         seconds: float) -> None:
    """The panel figure for the test image of median L2O PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = torch.from_numpy(truth)
    scores = {name: (psnr(torch.from_numpy(x), t).numpy(), ssim(torch.from_numpy(x), t).numpy())
              for name, x in images.items()}
    l2o = scores["l2o-jfb"][0]
    index = int(np.argsort(l2o)[len(l2o) // 2])
    fig, axes = plt.subplots(1, 1 + len(images), figsize=(2.4 * (1 + len(images)), 2.9))
    axes[0].imshow(truth[index], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("ground truth", fontsize=9)
    for ax, (name, x) in zip(axes[1:], images.items(), strict=True):
        p, s = scores[name]
        ax.imshow(np.clip(x[index], 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\n{p[index]:.2f} dB / {s[index]:.3f}", fontsize=9)
        print(f"{name:10s} this image {p[index]:6.2f} dB  SSIM {s[index]:.3f};  "
              f"test mean {p.mean():6.2f} dB  SSIM {s.mean():.3f}")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"side {size}, test image {index} (median L2O PSNR); learned methods trained "
                 f"{seconds:g} s on CPU", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="training budget of each learned method (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/ct/ct-samples.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    truth, images = reconstruct(args.size, args.seconds, args.seed)
    draw(truth, images, args.out, args.size, args.seconds)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
