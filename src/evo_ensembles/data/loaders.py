"""The data a PyTorch user already has: any ``Dataset``, a ``DataLoader``, or any re-iterable
of ``(x, y)`` batches, wherever the library takes training or evaluation data.

- :class:`~evo_ensembles.data.ArrayData` (in-memory tensors) stays the fast path: its order
  and augmentation depend only on (seed, epoch), so a resumed run is bit-identical.
- A map-style ``Dataset`` is batched here with a ``DataLoader`` whose shuffling generator is
  reseeded from (seed, epoch): the order is still reproducible and resumable, though the
  library's own augmentation is not applied (use the dataset's transforms).
- A ``DataLoader`` (or another iterable of batches) is used as it is: its order is the
  user's, so a resumed run is not bit-identical, and ``seed`` does not change it. An
  epoch is one pass over it; the one-cycle schedule needs ``len()``.

Examples:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.randn(10, 3), torch.arange(10))
    >>> loader = epoch_batches(ds, 4, shuffle=False)
    >>> len(loader), [y.tolist() for _, y in loader]
    (3, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import UserError
from .arrays import ArrayData, Augment, BatchLoader, _canonical_device, epoch_generator, num_batches

TrainData = ArrayData | Dataset | DataLoader | Iterable
_ORDER_STREAM = 3  # epoch_generator stream of a Dataset's shuffling (BatchLoader uses 0 and 1)


class ExternalBatches:
    """Batches of a user's ``Dataset`` or ``DataLoader``, moved to ``device`` (the
    :class:`BatchLoader` interface: ``set_epoch``, ``len``, ``num_samples``, iteration)."""

    def __init__(
        self,
        source: Any,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device, self.seed, self.epoch = _canonical_device(device), int(seed), 0
        self._generator: torch.Generator | None = None
        if isinstance(source, Dataset) and not isinstance(source, torch.utils.data.IterableDataset):
            self._generator = torch.Generator() if shuffle else None
            self.loader: Iterable = DataLoader(
                source, batch_size=batch_size, shuffle=shuffle, generator=self._generator
            )
        elif isinstance(source, Iterable):
            self.loader = source
        else:
            raise UserError(
                f"expected ArrayData, a Dataset, a DataLoader or batches of (x, y); "
                f"got {type(source).__name__}"
            )
        self._samples: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self._generator is not None:
            self._generator.set_state(epoch_generator(self.seed, epoch, _ORDER_STREAM).get_state())

    def __len__(self) -> int:
        try:
            return len(self.loader)  # type: ignore[arg-type]
        except TypeError:
            raise UserError(
                "this data has no len(): the learning-rate schedule needs the number of "
                "batches per epoch; pass a Dataset or a DataLoader"
            ) from None

    @property
    def num_samples(self) -> int:
        """Samples in the last full pass (or the dataset's size before the first)."""
        if self._samples is not None:
            return self._samples
        dataset = getattr(self.loader, "dataset", None)
        return len(dataset) if dataset is not None else 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = 0
        for batch in self.loader:
            x, y = batch[0], batch[1]
            x = torch.as_tensor(x).to(self.device, non_blocking=True)
            y = torch.as_tensor(y).to(self.device, non_blocking=True)
            n += len(y)
            yield x, y
        self._samples = n


def epoch_batches(
    data: TrainData,
    batch_size: int,
    *,
    shuffle: bool = False,
    augment: Augment | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> BatchLoader | ExternalBatches:
    """The batch iterator of ``data``: a :class:`BatchLoader` for ArrayData, else :class:`ExternalBatches`."""
    if isinstance(data, ArrayData):
        return BatchLoader(
            data, batch_size, shuffle=shuffle, augment=augment, seed=seed, device=device
        )
    return ExternalBatches(data, batch_size, shuffle=shuffle, seed=seed, device=device)


def steps_per_epoch(data: TrainData | int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``fit`` on ``data`` (or on that many in-memory examples)."""
    if isinstance(data, int):
        return num_batches(data, batch_size)
    return len(epoch_batches(data, batch_size))


def data_size(data: TrainData) -> int | None:
    """Examples in ``data`` when known without a pass over it (``None`` otherwise)."""
    if isinstance(data, (ArrayData, Dataset)):
        try:
            return len(data)  # type: ignore[arg-type]
        except TypeError:
            return None
    dataset = getattr(data, "dataset", None)
    return len(dataset) if dataset is not None else None


def as_tensors(
    data: Any, y: torch.Tensor | None = None, *, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors of evaluation data given as tensors, ArrayData, a Dataset or a DataLoader.

    Evaluation sets (validation, test, KL probes) are held in memory once, because the noisy
    method scores every child on the same inputs.
    """
    if isinstance(data, torch.Tensor):
        if y is None:
            raise UserError("labels are needed with an input tensor")
        return data, y
    if isinstance(data, ArrayData):
        return data.x, data.y
    xs, ys = [], []
    for xb, yb in epoch_batches(data, batch_size):
        xs.append(xb.cpu())
        ys.append(yb.cpu())
    if not xs:
        raise UserError("the evaluation data is empty")
    return torch.cat(xs), torch.cat(ys)


__all__ = [
    "ExternalBatches",
    "TrainData",
    "as_tensors",
    "data_size",
    "epoch_batches",
    "steps_per_epoch",
]
