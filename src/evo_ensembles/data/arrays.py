"""In-memory data: a split held as two tensors, batch augmentation, and a fast batch iterator.

Everything is tensors end to end (no DataLoader, no per-sample Python), and every random
choice comes from an explicit, seeded ``torch.Generator`` so runs are reproducible.

Examples:
    >>> import torch
    >>> from evo_ensembles.data import ArrayData, Augment, BatchLoader
    >>> data = ArrayData(torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,)))
    >>> loader = BatchLoader(data, 32, shuffle=True, augment=Augment(pad=2), seed=0)
    >>> loader.set_epoch(3)
    >>> [x.shape[0] for x, _ in loader]
    [32, 32, 32, 4]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_nonneg_int, check_positive_int

# Independent random streams per epoch: adding augmentation never changes the data order.
_PERM_STREAM = 0
_AUGMENT_STREAM = 1


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded from (seed, epoch, stream) only: epoch e is the same whether or
    not epochs before it ran (resumable). SeedSequence mixes the three so nearby seeds and
    epochs give unrelated streams.

    Examples:
        >>> torch.randperm(5, generator=epoch_generator(0, 1)).tolist() == \\
        ...     torch.randperm(5, generator=epoch_generator(0, 1)).tolist()
        True
    """
    entropy = [int(seed) % 2**64, int(epoch) % 2**64, int(stream) % 2**64]
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _canonical_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        # Tensors moved to "cuda" land on the current device; name it so cache keys match.
        device = torch.device("cuda", torch.cuda.current_device())
    return device


@dataclass(eq=False)
class ArrayData:
    """One split in memory: ``x`` float32 (N, C, H, W), ``y`` int64 (N,).

    Examples:
        >>> d = ArrayData(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 3]))
        >>> len(d.subset([1, 3])), d.subset([1, 3]).y.tolist()
        (2, [1, 3])
    """

    x: torch.Tensor
    y: torch.Tensor
    # Copies of this split on other devices, so loaders reuse one upload per device.
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.y.dim() != 1 or self.x.dim() < 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"ArrayData needs x (N, ...) and y (N,); got x {tuple(self.x.shape)}, "
                f"y {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ArrayData:
        """A new ArrayData holding the rows ``indices`` (a copy, in the order given)."""
        idx = torch.as_tensor(indices, dtype=torch.long).to(self.x.device)
        return ArrayData(self.x.index_select(0, idx), self.y.index_select(0, idx.to(self.y.device)))

    def to(self, device: torch.device | str) -> ArrayData:
        """This split on ``device``: ``self`` if already there, else a cached copy.

        The copy is re-made if ``x``/``y`` were replaced or modified in place since.
        """
        device = _canonical_device(device)
        if self.x.device == device and self.y.device == device:
            return self
        versions = (self.x._version, self.y._version)
        hit = self._cache.get(str(device))
        if hit is not None and hit[0] is self.x and hit[1] is self.y and hit[2] == versions:
            return hit[3]
        moved = ArrayData(self.x.to(device), self.y.to(device))
        self._cache[str(device)] = (self.x, self.y, versions, moved)
        return moved


@dataclass(frozen=True)
class Augment:
    """Batch augmentation: random crop back to the input size after ``pad`` pixels of zero
    padding on each side, and (if ``flip``) a random horizontal flip with probability 1/2.

    The data are already normalised, so zero padding fills with the channel mean. Works on
    any device; randomness comes only from ``generator`` (on CPU or on the batch's device).

    Examples:
        >>> aug = Augment(pad=4, flip=True)
        >>> aug(torch.randn(8, 3, 32, 32), torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 32, 32])
    """

    pad: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        check_nonneg_int(self.pad, "augmentation padding")

    @property
    def is_identity(self) -> bool:
        return self.pad == 0 and not self.flip

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw parameters for ``n`` images: shifts (n, 2) in [0, 2*pad] and flips (n,) bool,
        on the generator's device."""
        dev = generator.device
        if self.pad:
            shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator, device=dev)
        else:
            shifts = torch.zeros(n, 2, dtype=torch.long, device=dev)
        if self.flip:
            flips = torch.rand(n, generator=generator, device=dev) < 0.5
        else:
            flips = torch.zeros(n, dtype=torch.bool, device=dev)
        return shifts, flips

    def apply(self, x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """Apply given parameters (from :meth:`sample`) to a batch (N, C, H, W)."""
        if self.is_identity:
            return x
        n, c, h, w = x.shape
        p = self.pad
        xp = F.pad(x, (p, p, p, p)) if p else x
        shifts = shifts.to(x.device)
        # One gather does crop and flip together: output pixel (i, j) of image k reads padded
        # pixel (i + dy_k, j' + dx_k), where j' = W-1-j if image k is flipped, else j.
        rows = shifts[:, :1] + torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device).expand(n, w)
        if self.flip:
            cols = torch.where(flips.to(x.device)[:, None], w - 1 - cols, cols)
        cols = cols + shifts[:, 1:]
        idx = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(n, 1, h * w)
        out = xp.reshape(n, c, -1).gather(2, idx.expand(n, c, h * w))
        return out.view(n, c, h, w)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.is_identity:
            return x
        return self.apply(x, *self.sample(x.shape[0], generator))


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches in one pass over ``n`` examples (the last short batch counts unless dropped)."""
    return int(n) // int(batch_size) if drop_last else -(-int(n) // int(batch_size))


class BatchLoader:
    """Iterate ``(x, y)`` batches of an :class:`ArrayData`, as fast as plain tensor indexing.

    With ``shuffle``, the order (and augmentation) of epoch ``e`` depend only on
    ``(seed, e)``; call :meth:`set_epoch` before each epoch (like DistributedSampler,
    iterating again without it repeats the same epoch). For a CUDA ``device`` the whole
    split is uploaded once and cached on the ArrayData; otherwise batches stay on CPU.
    Unshuffled, unaugmented batches are views of the data: do not modify them in place.

    Examples:
        >>> data = ArrayData(torch.randn(10, 1, 4, 4), torch.arange(10))
        >>> loader = BatchLoader(data, 4, drop_last=True)
        >>> len(loader), loader.num_samples, [y.tolist() for _, y in loader]
        (2, 8, [[0, 1, 2, 3], [4, 5, 6, 7]])
    """

    def __init__(
        self,
        data: ArrayData,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> None:
        check_positive_int(batch_size, "batch size")
        self.data = data
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = None if augment is None or augment.is_identity else augment
        self.seed = int(seed)
        self.device = _canonical_device(device)
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order/augmentation the next iteration produces."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return num_batches(len(self.data), self.batch_size, self.drop_last)

    @property
    def num_samples(self) -> int:
        """Samples yielded per epoch (fewer than ``len(data)`` with ``drop_last``)."""
        return len(self) * self.batch_size if self.drop_last else len(self.data)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data = self.data.to(self.device)
        x, y = data.x, data.y
        bs, total = self.batch_size, self.num_samples
        perm = None
        if self.shuffle:
            # randperm on a CPU generator keeps the order identical on every device.
            g = epoch_generator(self.seed, self.epoch, _PERM_STREAM)
            perm = torch.randperm(len(data), generator=g).to(x.device)
        aug = self.augment
        if aug is not None:
            # Draw the whole epoch's parameters at once: one small upload instead of per batch.
            g = epoch_generator(self.seed, self.epoch, _AUGMENT_STREAM)
            shifts, flips = aug.sample(total, g)
            shifts, flips = shifts.to(x.device), flips.to(x.device)
        for start in range(0, total, bs):
            end = min(start + bs, total)
            if perm is None:
                xb, yb = x[start:end], y[start:end]
            else:
                idx = perm[start:end]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            if aug is not None:
                xb = aug.apply(xb, shifts[start:end], flips[start:end])
            yield xb, yb
