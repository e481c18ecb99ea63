"""The named classification data sets, generated or read, split with a seed and standardised.

- ``mnist1d``: MNIST-1D (Greydanus & Kobak, 2020), generated procedurally by the ``mnist1d``
  package's ``make_dataset`` (no download): one-channel signals of ``size`` samples (the
  package's ``final_seq_length``, 40 by default), ``n_samples`` of them of which 20 % are the
  test split, ten classes.
- ``digits``: scikit-learn's bundled 8 × 8 handwritten digits (1,797 images, ten classes); a
  seeded fifth is the test split.
- ``mnist``, ``svhn``, ``cifar10``: read from ``root`` in their distribution formats
  (:mod:`.formats`), with their own test splits.

A seeded ``val_fraction`` of the training split is held out for model selection. ``size``
resamples images to ``size × size`` (area-weighted, so downsampling averages) or sets the length
of MNIST-1D's signals: the data's side of the size axis. ``max_train`` / ``max_test`` keep a
seeded subset for quick runs. Inputs are standardised per channel with the training split's
mean and deviation.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.errors import ParameterError, UnknownNameError, did_you_mean
from l2obench.tasks.classification.formats import (
    DatasetFilesError,
    read_cifar10,
    read_mnist,
    read_svhn,
)
from l2obench.tasks.classification.splits import ClassificationData, LabelledSplit, hold_out

GENERATED = ("mnist1d", "digits")
FROM_FILES = {"mnist": read_mnist, "svhn": read_svhn, "cifar10": read_cifar10}
DATASETS = (*GENERATED, *FROM_FILES)
N_CLASSES = 10  # every data set above has ten classes


#: Each data set's native input shape ``(C, *spatial)``.
NATIVE_SHAPES: dict[str, tuple[int, ...]] = {
    "mnist1d": (1, 40), "digits": (1, 8, 8), "mnist": (1, 28, 28), "svhn": (3, 32, 32),
    "cifar10": (3, 32, 32),
}


def input_shape(name: str, size: int | None) -> tuple[int, ...]:
    """The input shape of data set ``name`` at ``size`` (None: native), without loading it."""
    native = NATIVE_SHAPES[name]
    return native if size is None else (native[0], *(size for _ in native[1:]))


def mnist1d_arrays(n_samples: int, length: int, seed: int) -> tuple[LabelledSplit, LabelledSplit]:
    """MNIST-1D's train and test splits, generated with ``seed`` at signal ``length``.

    ``make_dataset`` seeds Python's and NumPy's global generators; their states are restored
    afterwards, so generating data does not change any other random stream of the process.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.final_seq_length, args.seed = n_samples, length, seed
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)

    def split(x: np.ndarray, y: np.ndarray) -> LabelledSplit:
        return LabelledSplit(np.asarray(x, dtype=np.float32)[:, None, :],
                             np.asarray(y, dtype=np.int64))

    return split(data["x"], data["y"]), split(data["x_test"], data["y_test"])


def digits_arrays(seed: int) -> tuple[LabelledSplit, LabelledSplit]:
    """scikit-learn's digits scaled to [0, 1], with a seeded fifth as the test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]
    return hold_out(LabelledSplit(x, np.asarray(bunch.target, dtype=np.int64)), 0.2, seed)


def resample(x: np.ndarray, size: int) -> np.ndarray:
    """Images ``[N, C, H, W]`` resampled to ``size × size`` by area averaging (downsampling)
    or bilinear interpolation (upsampling)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    mode = "area" if size <= min(x.shape[2:]) else "bilinear"
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(t, size=(size, size), mode=mode, **kwargs).numpy()


def _subset(split: LabelledSplit, limit: int | None, seed: int) -> LabelledSplit:
    if limit is None or limit >= len(split):
        return split
    return split.take(np.sort(np.random.default_rng(seed).permutation(len(split))[:limit]))


def _check(name: str, size: int | None, val_fraction: float, n_samples: int,
           max_train: int | None, max_test: int | None, root: Path | None) -> None:
    if name not in DATASETS:
        raise UnknownNameError(f"unknown data set '{name}'{did_you_mean(name, DATASETS)}; "
                               f"known: {', '.join(DATASETS)}")
    if size is not None and size < 4:
        raise ParameterError(f"size must be at least 4, not {size}")
    if not 0.0 < val_fraction < 1.0:
        raise ParameterError(f"val_fraction must lie in (0, 1), not {val_fraction}")
    if name == "mnist1d" and n_samples < 50:
        raise ParameterError(f"n_samples must be at least 50, not {n_samples}")
    for label, limit in (("max_train", max_train), ("max_test", max_test)):
        if limit is not None and limit < 2:
            raise ParameterError(f"{label} must be at least 2 (or unset), not {limit}")
    if name in FROM_FILES:
        if root is None:
            raise DatasetFilesError(f"the data set '{name}' is read from files: give the "
                                    "folder that holds them (root)")
        if not root.is_dir():
            raise DatasetFilesError(f"the folder {root} for '{name}' does not exist")


def load_dataset(
    name: str,
    *,
    seed: int,
    val_fraction: float = 0.2,
    size: int | None = None,
    n_samples: int = 5000,
    max_train: int | None = None,
    max_test: int | None = None,
    root: Path | None = None,
) -> ClassificationData:
    """The data set ``name`` split into train/val/test with ``seed`` (see the module's notes).

    ``n_samples`` is MNIST-1D's count (train and test together); ``root`` the folder of the
    file-based data sets. Bad arguments raise one :class:`~l2obench.errors.L2OBenchError`.
    """
    _check(name, size, val_fraction, n_samples, max_train, max_test, root)
    if name == "mnist1d":
        train, test = mnist1d_arrays(n_samples, size or 40, seed)
    elif name == "digits":
        train, test = digits_arrays(seed)
    else:
        assert root is not None
        read = FROM_FILES[name]
        train, test = (LabelledSplit(*read(root, split)) for split in ("train", "test"))
    train = _subset(train, max_train, seed)
    test = _subset(test, max_test, seed + 1)
    if size is not None and train.x.ndim == 4:
        train = LabelledSplit(resample(train.x, size), train.y)
        test = LabelledSplit(resample(test.x, size), test.y)
    train, val = hold_out(train, val_fraction, seed)
    axes = (0, *range(2, train.x.ndim))
    mean = train.x.mean(axis=axes, keepdims=True)
    std = train.x.std(axis=axes, keepdims=True) + 1e-6

    def standardise(s: LabelledSplit) -> LabelledSplit:
        return LabelledSplit(((s.x - mean) / std).astype(np.float32), s.y)

    return ClassificationData(name, standardise(train), standardise(val), standardise(test),
                              N_CLASSES)
