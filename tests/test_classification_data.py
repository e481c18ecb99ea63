"""The classification data: readers of the distribution formats on files written here in those
formats, the generated data sets without network access, seeded splits, clear refusals."""

from __future__ import annotations

import gzip
import pickle
import random
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from l2obench.errors import L2OBenchError, ParameterError, UnknownNameError
from l2obench.tasks.classification.datasets import load_dataset
from l2obench.tasks.classification.formats import (
    DatasetFilesError,
    read_cifar10,
    read_idx,
    read_mnist,
    read_svhn,
)
from l2obench.tasks.classification.splits import LabelledSplit, hold_out


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as LeCun et al. distribute MNIST: magic, sizes (big-endian), bytes."""
    raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    raw += struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path: Path, gz: bool) -> None:
    ext = ".gz" if gz else ""
    train_x, test_x = images(30, (6, 6), 0), images(10, (6, 6), 1)
    train_y, test_y = np.arange(30) % 10, np.arange(10)[::-1]
    write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", train_x)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{ext}", train_y)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", test_x)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", test_y)
    x, y = read_mnist(tmp_path, "test")
    assert x.shape == (10, 1, 6, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), test_x)
    np.testing.assert_array_equal(y, test_y)
    data = load_dataset("mnist", seed=0, root=tmp_path)
    assert data.input_shape == (1, 6, 6)
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 10)
    np.testing.assert_array_equal(data.test.y, test_y)


def test_idx_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    write_idx(path, images(3, (4, 4), 0))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetFilesError, match="header announces"):
        read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetFilesError, match="not an IDX file"):
        read_idx(path)


def test_svhn_mat_files(tmp_path: Path) -> None:
    imgs = images(12, (3, 32, 32), 2)  # [N, C, H, W]
    labels = np.array([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1])
    for name in ("train_32x32.mat", "test_32x32.mat"):
        savemat(tmp_path / name, {"X": imgs.transpose(2, 3, 1, 0), "y": labels[:, None]})
    x, y = read_svhn(tmp_path, "train")
    np.testing.assert_array_equal(np.rint(x * 255), imgs)
    np.testing.assert_array_equal(y, np.where(labels == 10, 0, labels))
    assert load_dataset("svhn", seed=0, root=tmp_path, size=8).input_shape == (3, 8, 8)


def test_cifar10_pickled_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected = []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        imgs = images(4, (3, 32, 32), 10 + i)
        labels = [(i + j) % 10 for j in range(4)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": imgs.reshape(4, 3072), b"labels": labels}, f, protocol=2)
        expected.append((imgs, labels))
    x, y = read_cifar10(tmp_path, "train")
    assert x.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(np.rint(x * 255), np.concatenate([e[0] for e in expected[:5]]))
    np.testing.assert_array_equal(y, np.concatenate([e[1] for e in expected[:5]]))
    x_test, _ = read_cifar10(folder, "test")  # the batches' folder itself also works
    np.testing.assert_array_equal(np.rint(x_test * 255), expected[5][0])


@pytest.mark.parametrize("name, named", [
    ("mnist", "train-images-idx3-ubyte"), ("svhn", "train_32x32.mat"),
    ("cifar10", "data_batch_1"),
])
def test_missing_files_say_what_to_put_where(tmp_path: Path, name: str, named: str) -> None:
    with pytest.raises(DatasetFilesError, match=named) as err:
        load_dataset(name, seed=0, root=tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DatasetFilesError, match="does not exist"):
        load_dataset(name, seed=0, root=tmp_path / "nowhere")
    with pytest.raises(DatasetFilesError, match="give the folder"):
        load_dataset(name, seed=0)


def test_mnist1d_is_generated_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    np.random.seed(123)
    random.seed(123)
    python_state = random.getstate()
    data = load_dataset("mnist1d", seed=0, n_samples=200)
    assert np.random.random_sample() == np.random.RandomState(123).random_sample()
    assert random.getstate() == python_state
    assert data.input_shape == (1, 40) and data.n_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (128, 32, 40)
    assert set(np.unique(data.train.y)) == set(range(10))
    again = load_dataset("mnist1d", seed=0, n_samples=200)
    np.testing.assert_array_equal(again.train.x, data.train.x)
    other = load_dataset("mnist1d", seed=1, n_samples=50, size=60)
    assert other.input_shape == (1, 60)
    assert abs(float(data.train.x.mean())) < 1e-4
    assert float(data.train.x.std()) == pytest.approx(1, abs=1e-3)


def test_digits_and_resampling() -> None:
    data = load_dataset("digits", seed=0)
    assert data.input_shape == (1, 8, 8)
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert load_dataset("digits", seed=0, size=16, max_train=100).input_shape == (1, 16, 16)


def test_hold_out_is_seeded_and_a_partition() -> None:
    split = LabelledSplit(np.arange(50, dtype=np.float32)[:, None, None], np.arange(50))
    rest, held = hold_out(split, 0.2, seed=4)
    assert len(held) == 10 and sorted(np.concatenate([rest.y, held.y])) == list(range(50))
    np.testing.assert_array_equal(hold_out(split, 0.2, seed=4)[1].y, held.y)
    assert not np.array_equal(hold_out(split, 0.2, seed=5)[1].y, held.y)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"name": "mnist-1d"}, UnknownNameError, "did you mean 'mnist1d'"),
    ({"name": "digits", "size": 2}, ParameterError, "size must be at least 4"),
    ({"name": "digits", "val_fraction": 1.5}, ParameterError, "val_fraction"),
    ({"name": "mnist1d", "n_samples": 10}, ParameterError, "n_samples"),
    ({"name": "digits", "max_train": 1}, ParameterError, "max_train"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, object], error: type[L2OBenchError],
                                   message: str) -> None:
    name = str(kwargs.pop("name"))
    with pytest.raises(error, match=message):
        load_dataset(name, seed=0, **kwargs)  # type: ignore[arg-type]
