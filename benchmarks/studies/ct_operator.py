"""The CT ray transform's speed: forward + adjoint on a batch against scikit-image's
``radon``/``iradon`` (one image at a time, the interpolating reference) and against the sparse
matrix's memory-traffic floor, all measured in the same run and printed as ratios.

The floor is the bytes one product must read and write (the CSR arrays once, plus the batch's
input and output) divided by the bandwidth of a large tensor copy measured here (main memory);
a ratio near 1 means the product is bound by memory traffic, as a sparse product should be, and
a ratio below 1 that the matrix stayed in the processor's caches between products.
skimage's ``iradon`` runs unfiltered (``filter_name=None``), the backprojection that ``Aᵀ`` is.

Usage: ``python -m benchmarks.studies.ct_operator [--size 128] [--batch 16] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from skimage.transform import iradon, radon

from l2obench.measure import now
from l2obench.tasks.ct.data import make_data
from l2obench.tasks.ct.geometry import ParallelBeamGeometry
from l2obench.tasks.ct.operator import RayTransform


def best_of(fn: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed calls (after one warm-up), seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = now(device)
        fn()
        times.append(now(device) - start)
    return min(times)


def copy_bandwidth(device: torch.device, n_bytes: int = 1 << 28) -> float:
    """Bytes per second of ``clone`` on a large float32 tensor (read + write counted)."""
    t = torch.empty(n_bytes // 4, dtype=torch.float32, device=device)
    return 2 * n_bytes / best_of(lambda: t.clone(), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = ParallelBeamGeometry(args.size)
    op = RayTransform(g, device=device)
    data = make_data(g, args.batch, seed=0)
    x = torch.as_tensor(data.images, dtype=torch.float32, device=device)
    y = op.forward(x)

    ours = best_of(lambda: op.adjoint(op.forward(x)), device)
    deg = np.degrees(g.angles)
    images = data.images.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk_start = time.perf_counter()
        for img in images:
            iradon(radon(img, deg, circle=False), deg, circle=False, filter_name=None)
        skimage_s = time.perf_counter() - sk_start

    nnz = op.matrix.values().numel()
    matrix_bytes = nnz * (4 + 8) + (g.n_rays + 1) * 8
    vector_bytes = 4 * args.batch * (g.n_pixels + g.n_rays)
    floor = 2 * (matrix_bytes + vector_bytes) / copy_bandwidth(device)

    print(f"device {device}, size {g.size}, angles {g.n_angles}, detectors {g.detectors}, "
          f"batch {args.batch}, nnz {nnz}, y {tuple(y.shape)}")
    print(f"forward+adjoint (ours, batched)      {ours * 1e3:9.2f} ms")
    print(f"radon+iradon (skimage, per image)    {skimage_s * 1e3:9.2f} ms")
    print(f"memory-traffic floor                 {floor * 1e3:9.2f} ms")
    print(f"skimage / ours = {skimage_s / ours:.1f}x; ours / floor = {ours / floor:.1f}x")


if __name__ == "__main__":
    main()
