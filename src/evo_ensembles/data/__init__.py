"""Data sets as in-memory tensors: local readers (IDX, CIFAR binary), splits, augmentation,
and a fast batch iterator. Nothing is ever downloaded.

Examples:
    >>> from evo_ensembles.data import BatchLoader, load_dataset
    >>> splits = load_dataset("fashion-mnist", subset=1000, seed=0)
    >>> loader = BatchLoader(splits.train, 128, shuffle=True, augment=splits.augment, seed=0)
    >>> loader.set_epoch(0)
    >>> x, y = next(iter(loader))
    >>> x.shape, y.dtype
    (torch.Size([128, 1, 28, 28]), torch.int64)

The out-of-distribution sets (:mod:`.ood`) load on first use of their names, so that
``python -m evo_ensembles.data.ood`` runs a module not already imported by this package.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .arrays import ArrayData, Augment, BatchLoader
from .corrupted import CorruptedSet, generate_corrupted, plot_corruption_grid
from .idx import read_idx
from .registry import (
    DataSplits,
    available_datasets,
    corrupted_test,
    dataset_augment,
    load_corrupted,
    load_dataset,
    resolve_root,
)

_LAZY = dict.fromkeys(
    ["available_ood_sets", "generate_ood", "load_ood", "ood_from", "ood_sets", "plot_ood_grid"], ".ood"
)

if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from .ood import (  # noqa: F401
        available_ood_sets,
        generate_ood,
        load_ood,
        ood_from,
        ood_sets,
        plot_ood_grid,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

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
    "available_ood_sets",
    "generate_ood",
    "load_ood",
    "ood_from",
    "ood_sets",
    "plot_ood_grid",
]
