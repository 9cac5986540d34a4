"""The data sets this toolkit knows: names and aliases, where their files are, how to read
and check them, their channel statistics and normalisation, their training augmentation.

The bottom of :mod:`evo_ensembles.data`: :mod:`.registry` loads a data set by name from
here, :mod:`.corrupted` and :mod:`.ood` read the clean files through it.

Examples:
    >>> split_corrupted_name("fmnist-c"), resolve_root("/data")
    (('fashion-mnist', True), PosixPath('/data'))
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError, UnknownNameError, UserError
from .arrays import Augment
from .cifar import read_cifar_bin
from .idx import read_idx

ROOT_ENV = "EVO_ENSEMBLES_DATA_ROOT"
DEFAULT_ROOT = "/usr/share/datasets"
SUBSET_MIN_TEST = 1000

RawSplits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    dirname: str
    num_classes: int
    input_shape: tuple[int, int, int]
    augment: Augment
    hint: str  # how to get the files; ``{dir}`` is the data set's directory
    read: Callable[[Path, _Spec], RawSplits] = field(repr=False)


def _missing(spec: _Spec, path: Path) -> DataNotFoundError:
    return DataNotFoundError(
        f"{spec.title}: missing file {path}; " + spec.hint.format(dir=path.parent)
        + f" (data root: root=, else ${ROOT_ENV}, else {DEFAULT_ROOT})"
    )


def _read_idx_sets(d: Path, spec: _Spec) -> RawSplits:
    out = []
    for split in ("train", "t10k"):
        pair = []
        for kind in ("images-idx3", "labels-idx1"):
            base = d / f"{split}-{kind}-ubyte"
            gz = base.with_name(base.name + ".gz")
            path = gz if gz.is_file() else base if base.is_file() else None
            if path is None:
                raise _missing(spec, gz)
            pair.append(read_idx(path))
        images, labels = pair
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
            raise UserError(
                f"{spec.title}: {d}/{split}-* hold {images.dtype} images {images.shape} and "
                f"labels {labels.shape}; expected uint8 (N, H, W) and (N,)"
            )
        out += [torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))]
    return out[0], out[1], out[2], out[3]


def _cifar_reader(train_files: list[str], test_file: str, label_bytes: int):
    def read(d: Path, spec: _Spec) -> RawSplits:
        for f in [*train_files, test_file]:
            if not (d / f).is_file():
                raise _missing(spec, d / f)
        xtr, ytr = read_cifar_bin([d / f for f in train_files], label_bytes)
        xte, yte = read_cifar_bin([d / test_file], label_bytes)
        return tuple(torch.from_numpy(a) for a in (xtr, ytr, xte, yte))  # type: ignore[return-value]

    return read


_MNIST_FILES = ("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")
_SPECS: dict[str, _Spec] = {
    s.name: s
    for s in [
        _Spec("fashion-mnist", "Fashion-MNIST", "fashion-mnist", 10, (1, 28, 28),
              Augment(pad=2, flip=True),
              "install it with `apt-get install dataset-fashion-mnist`, or put the four "
              f"Fashion-MNIST IDX files ({_MNIST_FILES}) in {{dir}}", _read_idx_sets),
        _Spec("mnist", "MNIST", "mnist", 10, (1, 28, 28), Augment(pad=2, flip=False),
              f"put the four MNIST IDX files ({_MNIST_FILES}, gzipped or not) in {{dir}}",
              _read_idx_sets),
        _Spec("cifar10", "CIFAR-10", "cifar-10-batches-bin", 10, (3, 32, 32),
              Augment(pad=4, flip=True),
              "extract the binary version (cifar-10-binary.tar.gz from "
              "https://www.cs.toronto.edu/~kriz/cifar.html) so that {dir} holds "
              "data_batch_1.bin..data_batch_5.bin and test_batch.bin",
              _cifar_reader([f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin", 1)),
        _Spec("cifar100", "CIFAR-100", "cifar-100-binary", 100, (3, 32, 32),
              Augment(pad=4, flip=True),
              "extract the binary version (cifar-100-binary.tar.gz from "
              "https://www.cs.toronto.edu/~kriz/cifar.html) so that {dir} holds train.bin "
              "and test.bin", _cifar_reader(["train.bin"], "test.bin", 2)),
    ]
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100"}


def available_datasets() -> list[str]:
    """Canonical names accepted by :func:`load_dataset` (aliases are also accepted)."""
    return sorted(_SPECS)


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$EVO_ENSEMBLES_DATA_ROOT``, else the default."""
    if root is None:
        root = os.environ.get(ROOT_ENV) or DEFAULT_ROOT
    return Path(root).expanduser()


def _lookup(name: str) -> _Spec:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        aliases = ", ".join(f"{a}={c}" for a, c in _ALIASES.items())
        raise UnknownNameError(
            f"unknown data set {name!r}; choose from {', '.join(available_datasets())} "
            f"(aliases: {aliases}; add -c for the corrupted test set, e.g. fashion-mnist-c)"
        )
    return _SPECS[key]


def split_corrupted_name(name: str) -> tuple[str, bool]:
    """The canonical clean name, and whether ``name`` asks for the corrupted set (``-c``).

    Examples:
        >>> split_corrupted_name("CIFAR-10-C"), split_corrupted_name("fmnist")
        (('cifar10', True), ('fashion-mnist', False))
    """
    key = name.strip().lower()
    for suffix in ("-c", "_c"):
        base = key.removesuffix(suffix)
        if base != key and _ALIASES.get(base, base) in _SPECS:
            return _lookup(base).name, True
    return _lookup(name).name, False


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std of uint8 images (N, C, H, W), in [0, 1] units.

    A 256-bin histogram per channel gives exact float64 moments without a float copy.
    """
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        p = counts / counts.sum()
        mean = float((p * levels).sum())
        var = float((p * (levels - mean) ** 2).sum())
        means.append(mean)
        stds.append(math.sqrt(var) if var > 0 else 1.0)  # constant channel: leave scale alone
    return tuple(means), tuple(stds)


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    shape = (1, len(mean), 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(shape) * 255.0
    s = torch.tensor(std, dtype=torch.float32).view(shape) * 255.0
    return x.to(torch.float32).sub_(m).div_(s)


def _check(spec: _Spec, x: torch.Tensor, y: torch.Tensor, split: str) -> None:
    if tuple(x.shape[1:]) != spec.input_shape or len(x) != len(y) or len(x) == 0:
        raise UserError(
            f"{spec.title} {split} files hold images {tuple(x.shape)} and {len(y)} labels; "
            f"expected N > 0 images of shape {spec.input_shape} and N labels"
        )
    if int(y.min()) < 0 or int(y.max()) >= spec.num_classes:
        raise UserError(
            f"{spec.title} {split} labels span {int(y.min())}..{int(y.max())}; "
            f"expected 0..{spec.num_classes - 1}"
        )


def dataset_augment(name: str) -> Augment:
    """The training augmentation a data set uses when augmentation is on (crop, flip)."""
    return _lookup(split_corrupted_name(name)[0]).augment
