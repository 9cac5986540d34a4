"""Data sets by name: read local files (never download), split, normalise, pick augmentation.

The data root is, in order: the ``root`` argument, ``$EVO_ENSEMBLES_DATA_ROOT``, then
``/usr/share/datasets`` (where ``apt-get install dataset-fashion-mnist`` puts Fashion-MNIST).

Subset policy (``subset=N``, for quick runs): the validation part is carved from the full
training set first (same as without ``subset``); then train keeps N of its examples
(random, seeded), val keeps ``ceil(N * f / (1 - f))`` (the same val:train ratio as a full
run, f = ``val_fraction``), and test keeps its first ``max(1000, N)`` examples in file
order (so it stays independent of the seed). Each is capped at what exists.

Corrupted test sets (:mod:`.corrupted`): ``NAME-c`` (``fashion-mnist-c``, ``mnist-c``,
``cifar10-c``, ``cifar100-c``) loads the clean train/val/test split of NAME and attaches its
corrupted test set as ``DataSplits.corrupted`` (an error when it is missing), normalised
with the same statistics as ``test`` and cut to the same first examples. Plain ``NAME``
attaches it too when it is already on disk, but only ``NAME-c`` adds it to
``describe()``, so generating a set never changes the run keys of plain runs.

Examples:
    >>> from evo_ensembles.data import load_dataset
    >>> splits = load_dataset("fashion-mnist", subset=2000, seed=1)
    >>> splits.describe()["sizes"]
    {'train': 2000, 'val': 223, 'test': 2000}
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checks import check_positive_int, check_split_fraction
from ..errors import DataNotFoundError, UserError, first_line
from .arrays import ArrayData, Augment
from .catalog import (
    SUBSET_MIN_TEST,
    _channel_stats,
    _check,
    _lookup,
    _normalise,
    available_datasets,
    dataset_augment,
    resolve_root,
    split_corrupted_name,
)
from .corrupted import _CSPECS, CorruptedSet, _cspec, _hint, _open


@dataclass
class DataSplits:
    """Train/val/test splits of one data set, normalised with the train part's statistics.

    Examples:
        >>> splits = load_dataset("fashion-mnist", subset=500)
        >>> splits.input_shape, splits.num_classes
        ((1, 28, 28), 10)
    """

    name: str
    train: ArrayData
    val: ArrayData
    test: ArrayData
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment | None = None
    val_fraction: float = 0.0
    seed: int = 0
    subset: int | None = None
    # The corrupted test set (same normalisation, same first examples as ``test``), if any.
    corrupted: CorruptedSet | None = None
    # Out-of-distribution sets of the caller's own (name → inputs normalised like ``test``),
    # scored by every run beside the generated ones (``evo_ensembles.data.ood.ood_from``).
    ood: dict[str, ArrayData] = field(default_factory=dict)

    def describe(self) -> dict:
        """A JSON-able summary, e.g. for run metadata.

        Has a ``corrupted`` key only for a ``NAME-c`` data set: a corrupted set attached
        because it happened to be on disk leaves the summary (and run keys) as they were.
        """
        aug = None if self.augment is None else {"pad": self.augment.pad, "flip": self.augment.flip}
        out = {
            "name": self.name,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "subset": self.subset,
            "mean": list(self.mean),
            "std": list(self.std),
            "augment": aug,
        }
        if self.corrupted is not None and self.corrupted.name == self.name:
            out["corrupted"] = self.corrupted.describe()
        return out


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    subset: int | None = None,
    seed: int = 0,
    augment: bool = True,
) -> DataSplits:
    """Load a data set from local files into normalised train/val/test :class:`ArrayData`.

    Validation is a seeded random ``val_fraction`` of the training files; the test files
    are used as they are. See the module docstring for the ``subset`` policy and for
    ``NAME-c`` (the corrupted test set, ``DataSplits.corrupted``).

    Examples:
        >>> s = load_dataset("fmnist", val_fraction=0.1, seed=0)
        >>> len(s.train), len(s.val), len(s.test)
        (54000, 6000, 10000)
    """
    clean, want_corrupted = split_corrupted_name(name)
    spec = _lookup(clean)
    check_split_fraction(val_fraction, "val_fraction")
    if subset is not None:
        check_positive_int(subset, "subset (training examples)")
    xtr, ytr, xte, yte = spec.read(resolve_root(root) / spec.dirname, spec)
    _check(spec, xtr, ytr, "training")
    _check(spec, xte, yte, "test")

    n = len(ytr)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_val = int(n * val_fraction)  # < n because val_fraction < 1, so train is never empty
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    n_test = len(yte)
    if subset is not None:
        train_idx = train_idx[: int(subset)]
        ratio = val_fraction / (1.0 - val_fraction)
        val_idx = val_idx[: math.ceil(len(train_idx) * ratio - 1e-9)]
        n_test = min(n_test, max(SUBSET_MIN_TEST, int(subset)))
    # Sorted indices keep file order inside each split (the selection itself is random).
    train_idx, val_idx = train_idx.sort().values, val_idx.sort().values

    xtr_part = xtr.index_select(0, train_idx)
    mean, std = _channel_stats(xtr_part)
    splits = DataSplits(
        name=spec.name + "-c" if want_corrupted else spec.name,
        train=ArrayData(_normalise(xtr_part, mean, std), ytr.index_select(0, train_idx)),
        val=ArrayData(_normalise(xtr.index_select(0, val_idx), mean, std),
                      ytr.index_select(0, val_idx)),
        test=ArrayData(_normalise(xte[:n_test], mean, std), yte[:n_test].clone()),
        num_classes=spec.num_classes,
        input_shape=spec.input_shape,
        mean=mean,
        std=std,
        augment=spec.augment if augment else None,
        val_fraction=float(val_fraction),
        seed=int(seed),
        subset=None if subset is None else int(subset),
    )
    splits.corrupted = attach_corrupted(splits, spec.name, root, required=want_corrupted)
    return splits


def load_corrupted(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> CorruptedSet:
    """Open a corrupted test set by name (``fashion-mnist``, ``fashion-mnist-c``, ``cifar10``...).

    Normalised with ``mean``/``std`` when given, else with the clean training split's
    statistics as ``load_dataset(name, root)`` computes them (default split), which needs
    the clean data set too. ``load_dataset("NAME-c")`` attaches it with its own split's.
    """
    cs = _cspec(name)
    found = _open(cs, resolve_root(root), (0.0,), (1.0,))  # a missing set is the first error
    if mean is None or std is None:
        clean = load_dataset(cs.clean, root)
        mean, std = clean.mean, clean.std
    return dataclasses.replace(found, mean=tuple(mean), std=tuple(std))


def attach_corrupted(splits: DataSplits, clean: str, root: str | os.PathLike | None, *,
                     required: bool) -> CorruptedSet | None:
    """The corrupted test set for ``splits`` (its normalisation, its first test examples),
    or None when it is not on disk and not ``required``. A damaged set is an error when
    required and a warning otherwise."""
    cs = _CSPECS[clean]
    try:
        found = _open(cs, resolve_root(root), splits.mean, splits.std)
        found = found.head(len(splits.test))
        k = found.size
        if not torch.equal(found.labels, splits.test.y[:k]):
            raise UserError(f"{found.title} at {found.path} has other labels than the clean test "
                            "files (made from other files?); " + _hint(cs, found.path.parent))
    except DataNotFoundError:
        if required:
            raise
        return None
    except UserError as e:
        if required:
            raise
        warnings.warn(f"ignoring the corrupted test set: {first_line(e)}", stacklevel=3)
        return None
    return found


def corrupted_test(data: DataSplits) -> CorruptedSet:
    """``data.corrupted``, or a clear error saying how to get it."""
    if data.corrupted is None:
        clean = split_corrupted_name(data.name)[0]
        raise DataNotFoundError(f"{data.name} has no corrupted test set attached; load it with "
                                f"load_dataset({clean + '-c'!r}, root) once it exists; "
                                + _hint(_CSPECS[clean], Path("<data root>")))
    return data.corrupted


__all__ = ["DataSplits", "attach_corrupted", "available_datasets", "corrupted_test", "dataset_augment",
           "load_corrupted", "load_dataset", "resolve_root", "split_corrupted_name"]
