"""The classification problem: a data set, its split sizes and input size, and the model width.

The size the suites sweep is ``width``, the latent channels of the network every method of the
family builds (:mod:`.network`): how the time and memory of each backward mode grow with the
model is the comparison's question. The data's own size is ``resolution`` (image side or
MNIST-1D signal length; 0 keeps the native one). Features reach methods flattened; the
problem's :attr:`ImageClassification.input_shape` restores them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from l2obench.errors import ParameterError
from l2obench.params import Param
from l2obench.problems.base import BaseProblem, Dataset
from l2obench.tasks.classification.datasets import DATASETS, N_CLASSES, input_shape, load_dataset
from l2obench.tasks.classification.splits import LabelledSplit

#: MNIST-1D's test share (``make_dataset``'s ``train_split`` is 0.8).
MNIST1D_TEST_SHARE = 0.2


class ImageClassification(BaseProblem):
    """Ten-class classification of signals or images, from a generated or local data set."""

    task = "classification"
    description = "ten-class classification (MNIST-1D, digits, MNIST, SVHN, CIFAR-10)"
    size_param = "width"
    params: ClassVar[dict[str, Param]] = {
        "width": Param(int, 32, "latent channels of the methods' networks", low=1, high=4096),
        "dataset": Param(str, "mnist1d", "the data set", choices=DATASETS),
        "resolution": Param(int, 0, "image side or signal length (0: native)", low=0,
                            high=1024),
        "root": Param(str, "", "folder of the file-based data sets (mnist, svhn, cifar10)"),
        "n_train": Param(int, 3000, "training inputs", low=2, high=10_000_000),
        "n_val": Param(int, 500, "validation inputs", low=1, high=10_000_000),
        "n_test": Param(int, 1000, "test inputs", low=1, high=10_000_000),
        "seed": Param(int, 0, "seed of the generation and of the splits", low=0,
                      high=2**32 - 1),
    }

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape ``(C, *spatial)``."""
        resolution = self.config["resolution"] or None
        return input_shape(self.config["dataset"], resolution)

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_vars(self) -> int:
        return N_CLASSES

    def generate(self) -> Dataset[LabelledSplit]:
        cfg = self.config
        pool = cfg["n_train"] + cfg["n_val"]
        n_samples = 10 * math.ceil(max(pool / (1 - MNIST1D_TEST_SHARE),
                                       cfg["n_test"] / MNIST1D_TEST_SHARE) / 10) + 10
        data = load_dataset(
            cfg["dataset"], seed=cfg["seed"], val_fraction=cfg["n_val"] / pool,
            size=cfg["resolution"] or None, n_samples=max(n_samples, 50), max_train=pool,
            max_test=cfg["n_test"], root=Path(cfg["root"]) if cfg["root"] else None)
        got = (len(data.train), len(data.val), len(data.test))
        wanted = (cfg["n_train"], cfg["n_val"], cfg["n_test"])
        if got != wanted:
            raise ParameterError(f"'{cfg['dataset']}' has {got[0] + got[1]} training and "
                                 f"{got[2]} test inputs; n_train + n_val = {pool} and n_test "
                                 f"= {cfg['n_test']} ask for more")
        return Dataset(data.train, data.val, data.test)
