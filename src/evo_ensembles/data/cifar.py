"""Read the *binary* CIFAR-10 / CIFAR-100 files (never the pickle versions).

Each record is ``label_bytes`` label bytes followed by 3072 pixel bytes: the 1024 red,
then 1024 green, then 1024 blue values of a 32x32 image in row-major order, so a
record reshapes directly to (3, 32, 32). CIFAR-10 has 1 label byte; CIFAR-100 has 2
(coarse, fine) and we keep the fine label.

Examples:
    >>> from evo_ensembles.data.cifar import read_cifar_bin
    >>> x, y = read_cifar_bin(["cifar-10-batches-bin/test_batch.bin"], label_bytes=1)  # doctest: +SKIP
    >>> x.shape, y.shape  # doctest: +SKIP
    ((10000, 3, 32, 32), (10000,))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, UserError

IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32


def parse_cifar_bin(
    buf: bytes, label_bytes: int, source: str = "<bytes>"
) -> tuple[np.ndarray, np.ndarray]:
    """Parse CIFAR binary records → (uint8 images (N, 3, 32, 32), int64 labels (N,)).

    The label kept is the last label byte (CIFAR-100's fine label).

    Examples:
        >>> x, y = parse_cifar_bin(bytes([7]) + bytes(3072), label_bytes=1)
        >>> x.shape, int(y[0])
        ((1, 3, 32, 32), 7)
    """
    if label_bytes < 1:
        raise ValueError(f"label_bytes must be >= 1, got {label_bytes}")
    record = label_bytes + PIXELS
    if len(buf) == 0 or len(buf) % record != 0:
        raise UserError(
            f"{source}: size {len(buf)} bytes is not a positive multiple of the {record}-byte "
            f"CIFAR record ({label_bytes} label byte(s) + {PIXELS} pixels); is it the binary "
            "version of the right data set?"
        )
    rows = np.frombuffer(buf, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int64)
    # The copy makes the images contiguous and writable (torch.from_numpy needs writable).
    images = rows[:, label_bytes:].reshape(-1, *IMAGE_SHAPE).copy()
    return images, labels


def read_cifar_bin(
    paths: Sequence[str | os.PathLike], label_bytes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate CIFAR binary batch files, in the order given.

    Examples:
        >>> read_cifar_bin(["cifar-100-binary/test.bin"], label_bytes=2)  # doctest: +SKIP
    """
    xs, ys = [], []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise DataNotFoundError(f"data file not found: {p}")
        x, y = parse_cifar_bin(p.read_bytes(), label_bytes, source=str(p))
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("read_cifar_bin needs at least one file")
    if len(xs) == 1:
        return xs[0], ys[0]
    return np.concatenate(xs), np.concatenate(ys)


def write_cifar_bin(
    path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, *, coarse: np.ndarray | None = None
) -> Path:
    """Write CIFAR binary records (2 label bytes when ``coarse`` is given); for tests and tools.

    Examples:
        >>> write_cifar_bin(tmp / "test_batch.bin", np.zeros((2, 3, 32, 32), np.uint8), [0, 1])  # doctest: +SKIP
    """
    images = np.asarray(images, dtype=np.uint8).reshape(-1, PIXELS)
    cols = [np.asarray(labels, dtype=np.uint8).reshape(-1, 1)]
    if coarse is not None:
        cols.insert(0, np.asarray(coarse, dtype=np.uint8).reshape(-1, 1))
    path = Path(path)
    path.write_bytes(np.concatenate([*cols, images], axis=1).tobytes())
    return path
