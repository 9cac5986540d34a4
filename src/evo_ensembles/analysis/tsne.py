"""Prediction clusters: t-SNE of the members' output vectors (SPEC §5).

Every member's probability vector on every test input is one point: M members × B inputs
give M·B points in the C-dimensional simplex, embedded in 2-D by scikit-learn's t-SNE
(PCA initialisation, Euclidean distances between probability vectors). Point ``m·B + b``
is member ``m`` on input ``b`` — the row-major flattening of (M, B, C).

The figure (:func:`plot_tsne`) shows the same embedding three times, coloured by the true
class, by the member's prediction and by whether that prediction is a mistake; the marker
tells the members apart. Siblings that agree land on top of each other; diverse members
spread each input's points apart.

Seeding: ``seed`` goes to ``TSNE(random_state=seed)``, which builds its own NumPy
RandomState from it; the global NumPy state is neither read nor changed. Same probabilities
and seed ⇒ the same embedding (on one machine and thread count: scikit-learn's Barnes-Hut
gradient sums over OpenMP threads).

Examples:
    >>> import torch
    >>> probs = torch.softmax(torch.randn(2, 20, 3, generator=torch.Generator().manual_seed(0)), -1)
    >>> member_embedding(probs, perplexity=5.0).shape
    (40, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
MISTAKE_COLOURS = ("#1b9e77", "#d95f02")  # correct, wrong


def member_embedding(
    member_probs: torch.Tensor,
    *,
    seed: int = 0,
    perplexity: float = 30.0,
) -> np.ndarray:
    """2-D t-SNE embedding (M·B, 2) of members' output vectors ``member_probs`` (M, B, C).

    ``perplexity`` must be below the number of points M·B (scikit-learn's rule; 5–50 is
    usual). Row ``m·B + b`` is member ``m`` on input ``b``.
    """
    from sklearn.manifold import TSNE

    if member_probs.dim() != 3:
        raise UserError(f"member_probs must be (M, B, C), got shape {tuple(member_probs.shape)}")
    m, b, c = member_probs.shape
    n = m * b
    if not 0 < perplexity < n:
        raise UserError(f"t-SNE perplexity must be in (0, {n}) for {m}×{b} points, got {perplexity}")
    points = member_probs.detach().cpu().double().reshape(n, c).numpy()
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(points).astype(np.float64)


def _member_slices(embedding: np.ndarray, m: int, b: int):
    for i in range(m):
        yield i, embedding[i * b:(i + 1) * b]


def plot_tsne(
    path: Path | str,
    embedding: np.ndarray,
    member_probs: torch.Tensor,
    targets: torch.Tensor,
    *,
    title: str = "",
    member_labels: Sequence[str] = (),
    class_names: Sequence[str] = (),
) -> None:
    """Three panels of the embedding (M·B, 2): coloured by true class, by the member's
    prediction, and correct vs wrong; one marker per member (cycled past 12 members).

    ``member_probs`` (M, B, C) and ``targets`` (B,) are what the embedding was made from.
    """
    from ..reporting import _save, plt

    m, b, c = member_probs.shape
    if embedding.shape != (m * b, 2):
        raise UserError(f"embedding must be ({m * b}, 2) for {m}×{b} outputs, got {embedding.shape}")
    if tuple(targets.shape) != (b,):
        raise UserError(f"targets must be ({b},), got {tuple(targets.shape)}")
    preds = member_probs.detach().cpu().argmax(-1).numpy()  # (M, B)
    y = targets.detach().cpu().numpy()
    if c <= 20:  # qualitative colours, one per class
        palette = [plt.get_cmap("tab10" if c <= 10 else "tab20")(k) for k in range(c)]
    else:
        palette = [plt.get_cmap("viridis")(k / (c - 1)) for k in range(c)]
    labels = list(member_labels) or [f"member {i + 1}" for i in range(m)]
    names = list(class_names) or [str(k) for k in range(c)]

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.6), sharex=True, sharey=True)
    panels = [("true class", lambda i: y), ("prediction", lambda i: preds[i]),
              ("mistakes", lambda i: (preds[i] != y).astype(int))]
    for ax, (name, colour_of) in zip(axes, panels):
        for i, pts in _member_slices(embedding, m, b):
            marker = MARKERS[i % len(MARKERS)]
            colours = MISTAKE_COLOURS if name == "mistakes" else palette
            ax.scatter(pts[:, 0], pts[:, 1], c=[colours[v] for v in colour_of(i)], s=9,
                       marker=marker, alpha=0.7, linewidths=0)
        ax.set_title(f"coloured by {name}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])

    member_handles = [plt.Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="#555",
                                 label=labels[i]) for i in range(min(m, len(MARKERS)))]
    axes[0].legend(handles=member_handles, fontsize=6, loc="best", framealpha=0.7)
    if c <= 20:
        class_handles = [plt.Line2D([], [], ls="", marker="o", color=palette[k], label=names[k])
                         for k in range(c)]
        axes[1].legend(handles=class_handles, fontsize=6, loc="best", framealpha=0.7, ncol=2)
    wrong = float((preds != y[None, :]).mean())
    mistake_handles = [plt.Line2D([], [], ls="", marker="o", color=MISTAKE_COLOURS[0], label="correct"),
                       plt.Line2D([], [], ls="", marker="o", color=MISTAKE_COLOURS[1],
                                  label=f"wrong ({wrong:.1%})")]
    axes[2].legend(handles=mistake_handles, fontsize=6, loc="best", framealpha=0.7)
    fig.suptitle(title, fontsize=10)
    _save(fig, Path(path))
