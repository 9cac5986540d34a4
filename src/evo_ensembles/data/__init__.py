"""Data sets as in-memory tensors: local readers (IDX, CIFAR binary), splits, augmentation,
and a fast batch iterator. Nothing is ever downloaded.

Example:
    >>> from evo_ensembles.data import BatchLoader, load_dataset
    >>> splits = load_dataset("fashion-mnist", subset=1000, seed=0)
    >>> loader = BatchLoader(splits.train, 128, shuffle=True, augment=splits.augment, seed=0)
    >>> loader.set_epoch(0)
    >>> x, y = next(iter(loader))
    >>> x.shape, y.dtype
    (torch.Size([128, 1, 28, 28]), torch.int64)
"""

from .arrays import ArrayData, Augment, BatchLoader
from .corrupted import (
    CorruptedSet,
    corrupted_test,
    generate_corrupted,
    load_corrupted,
    plot_corruption_grid,
)
from .idx import read_idx
from .registry import DataSplits, available_datasets, dataset_augment, load_dataset, resolve_root

__all__ = [
    "dataset_augment",
    "ArrayData",
    "Augment",
    "BatchLoader",
    "CorruptedSet",
    "corrupted_test",
    "generate_corrupted",
    "load_corrupted",
    "plot_corruption_grid",
    "DataSplits",
    "available_datasets",
    "load_dataset",
    "read_idx",
    "resolve_root",
]
