"""Perceptual hashes and RMSE between members' images (SPEC §5 "interpretable diversity").

Images (feature visualisations, saliency maps) of M members are compared pairwise by the
Hamming distance of five perceptual hashes (imagehash) and by RMSE, giving M × M matrices;
the paper reports that sparse-subnetwork siblings differ more than snapshot checkpoints on
every hash.

Hash sizes: ``average``, ``perceptual`` (DCT, ``phash``), ``difference`` (``dhash``) and
``wavelet`` (``whash``) use ``hash_size=8``, i.e. 64 bits each. ``colour`` (``colorhash``)
has a fixed layout of 14 bins (black, grey, 6 faint and 6 bright hues) with ``binbits``
bits each, so 64 bits exactly is impossible; ``binbits=5`` gives 70 bits, the nearest
(4 gives 56). Distances are counts of differing bits, so ``colour`` ranges 0..70 and the
others 0..64.

Tensor → image: each image is min-max scaled over all its values to uint8 [0, 255] (a
constant image becomes black); one channel (or an (H, W) tensor) becomes a grayscale 'L'
image, three channels an 'RGB' image. ``colorhash`` needs colour, so a grayscale image is
converted to RGB for it (all its mass then falls in the black/grey bins).

Examples:
    >>> import torch
    >>> a, b = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0)), torch.zeros(1, 16, 16)
    >>> d = hamming_matrices([a, a, b])
    >>> sorted(d), int(d["average"][0, 1])
    (['average', 'colour', 'difference', 'perceptual', 'wavelet'], 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import UserError

if TYPE_CHECKING:
    import imagehash
    from PIL import Image

HASH_SIZE = 8  # 8 × 8 = 64 bits for the size-parametrised hashes
COLOUR_BINBITS = 5  # 14 bins × 5 bits = 70 bits, the nearest colorhash gets to 64
HASH_KINDS = ("average", "perceptual", "difference", "wavelet", "colour")


def _minmax(t: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] over all values; a constant tensor becomes zeros."""
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)


def to_pil(img: torch.Tensor) -> Image.Image:
    """(C, H, W) with C in {1, 3}, or (H, W), min-max scaled to a uint8 'L' or 'RGB' image."""
    from PIL import Image

    t = img.detach().float().cpu()
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 3:
        t = t.permute(1, 2, 0)
    elif t.dim() != 2:
        raise UserError(f"an image must be (H, W), (1, H, W) or (3, H, W), got {tuple(img.shape)}")
    arr = np.ascontiguousarray((_minmax(t) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy())
    return Image.fromarray(arr)  # uint8 (H, W) → "L", (H, W, 3) → "RGB"


def image_hashes(img: torch.Tensor) -> dict[str, imagehash.ImageHash]:
    """The five perceptual hashes of one image, keyed by :data:`HASH_KINDS`.

    Examples:
        >>> h = image_hashes(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)))
        >>> h["perceptual"].hash.size, h["colour"].hash.size
        (64, 70)
    """
    import imagehash

    pil = to_pil(img)
    return {
        "average": imagehash.average_hash(pil, hash_size=HASH_SIZE),
        "perceptual": imagehash.phash(pil, hash_size=HASH_SIZE),
        "difference": imagehash.dhash(pil, hash_size=HASH_SIZE),
        "wavelet": imagehash.whash(pil, hash_size=HASH_SIZE),
        "colour": imagehash.colorhash(pil.convert("RGB"), binbits=COLOUR_BINBITS),
    }


def hamming_matrices(images: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """Pairwise Hamming distances (M, M) int64 between the images' hashes, one per kind."""
    hashes = [image_hashes(img) for img in images]
    m = len(hashes)
    out = {k: np.zeros((m, m), dtype=np.int64) for k in HASH_KINDS}
    for i in range(m):
        for j in range(i + 1, m):
            for k in HASH_KINDS:
                out[k][i, j] = out[k][j, i] = hashes[i][k] - hashes[j][k]
    return out


def rmse_matrix(images: Sequence[torch.Tensor], *, minmax: bool = False) -> np.ndarray:
    """Pairwise root-mean-square differences (M, M) float64 between same-shaped images.

    With ``minmax`` each image is first min-max scaled to [0, 1] (for maps on different
    scales, such as saliency maps of different members).

    Examples:
        >>> rmse_matrix([torch.zeros(2, 2), torch.ones(2, 2)]).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    if len({tuple(t.shape) for t in images}) > 1:
        raise UserError(f"images must share one shape, got {sorted({tuple(t.shape) for t in images})}")
    flat = [t.detach().cpu().double().reshape(-1) for t in images]
    if minmax:
        flat = [_minmax(t) for t in flat]
    m = len(flat)
    out = np.zeros((m, m), dtype=np.float64)
    for i in range(m):
        for j in range(i + 1, m):
            out[i, j] = out[j, i] = float((flat[i] - flat[j]).pow(2).mean().sqrt())
    return out


def distance_matrices(images: Sequence[torch.Tensor], *, minmax_rmse: bool = False) -> dict[str, np.ndarray]:
    """:func:`hamming_matrices` plus ``"rmse"`` (:func:`rmse_matrix`)."""
    return {**hamming_matrices(images), "rmse": rmse_matrix(images, minmax=minmax_rmse)}


def mean_distances(matrices: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The off-diagonal mean of each matrix (the number a table reports per hash kind)."""
    from ..metrics import off_diagonal_mean

    return {k: off_diagonal_mean(torch.as_tensor(np.asarray(v, dtype=np.float64)))
            for k, v in matrices.items()}


def plot_distance_matrices(
    path: Path | str,
    matrices: Mapping[str, np.ndarray],
    *,
    labels: Sequence[str] = (),
    title: str = "",
) -> None:
    """One heatmap panel per matrix (hash kinds, RMSE), side by side, each with its own
    colour scale; values are printed in the cells when M ≤ 10."""
    from ..reporting import _save, plt

    names = list(matrices)
    m = len(next(iter(matrices.values()))) if names else 0
    ticks = list(labels) if labels else [str(i + 1) for i in range(m)]
    side = 1.2 + 0.35 * m
    fig, axes = plt.subplots(1, len(names), figsize=((side + 0.45) * len(names) + 0.5, side + 0.6),
                             squeeze=False, layout="constrained")  # room for each colour bar and row labels
    for ax, name in zip(axes[0], names):
        mat = np.asarray(matrices[name], dtype=np.float64)
        im = ax.imshow(mat, cmap="viridis")
        if m <= 10:
            integer = np.issubdtype(np.asarray(matrices[name]).dtype, np.integer)
            for i in range(m):
                for j in range(m):
                    ax.text(j, i, f"{mat[i, j]:.0f}" if integer else f"{mat[i, j]:.2f}",
                            ha="center", va="center", fontsize=6, color="w")
        ax.set_xticks(range(m), ticks, fontsize=6)
        ax.set_yticks(range(m), ticks, fontsize=6)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.7).ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    _save(fig, Path(path))
