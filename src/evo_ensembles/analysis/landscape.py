"""Loss landscapes along two filter-normalised random directions (Li et al. 2018; SPEC §5).

f(α, β) = L(θ + αδ + βη): the mean cross-entropy of the model (eval mode) on a training
subset, over a grid of (α, β), for the parent, the pruned child before tuning and the same
child after tuning.

Directions (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets", §4): each
direction is Gaussian, and every *filter* of it — a row of a Linear weight, an output
channel of a Conv weight — is rescaled to the norm of the same filter of the model's
weights, ``d_i ← d_i · ‖θ_i‖ / ‖d_i‖``, so that the plot's scale does not depend on the
scale invariance of ReLU nets. Biases and normalisation parameters (and any other
parameter that is not a Linear/Conv weight) get a zero direction: Li et al. leave them
fixed, and a zero direction does so exactly. A filter whose weights are all zero (pruned)
gets a zero direction too. With ``mask``, entries outside a child's subnetwork are zeroed
before normalising, so the walk stays inside the subnetwork (pruned weights stay 0).

Comparable directions for several models: :func:`landscape_directions` draws the raw
Gaussian tensors from generators seeded by ``seed`` alone, so models with the same
architecture get the *same* raw draws, each filter-normalised to its own model's weights
(the same seed per model). The three surfaces then differ only through the models.

Why not the ``loss-landscapes`` package: it is NumPy-only, unmaintained since 2019 and not
installed; the whole method is the ~60 lines below.

Restoring θ: every grid point writes ``θ + αδ + βη`` into the parameters from one saved
copy of θ, and a ``finally`` writes θ back from that copy, so the weights are restored
bit for bit even if evaluation raises (adding and subtracting αδ would not be exact).

Examples:
    >>> import numpy as np, torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> dirs = landscape_directions(net, seed=0)
    >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    >>> loss_surface(net, dirs, x, y, alphas=np.linspace(-1, 1, 3), betas=np.linspace(-1, 1, 3)).shape
    (3, 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..subnet.masks import Mask, eligible_parameters

Direction = dict[str, torch.Tensor]
_FILTER_EPS = 1e-10


def filter_normalised_direction(
    model: nn.Module,
    *,
    generator: torch.Generator,
    mask: Mask | None = None,
) -> Direction:
    """A random direction keyed like ``model.named_parameters()`` (see the module docstring).

    Draws a standard normal tensor from ``generator`` (CPU) for each Linear/Conv weight in
    ``named_parameters()`` order; every other parameter gets zeros.

    Examples:
        >>> net = nn.Linear(3, 2)
        >>> d = filter_normalised_direction(net, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(d["weight"].norm(dim=1), net.weight.norm(dim=1)), d["bias"].abs().sum().item()
        (True, 0.0)
    """
    weights = eligible_parameters(model)
    out: Direction = {}
    for name, p in model.named_parameters():
        if name not in weights:
            out[name] = torch.zeros_like(p, memory_format=torch.contiguous_format).detach()
            continue
        w = p.detach()
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32).to(w.device, w.dtype)
        if mask is not None and name in mask:
            d = d * mask[name].to(w.device, w.dtype)
        rows_d = d.reshape(d.shape[0], -1)
        rows_w = w.reshape(w.shape[0], -1)
        scale = rows_w.norm(dim=1, keepdim=True) / (rows_d.norm(dim=1, keepdim=True) + _FILTER_EPS)
        out[name] = (rows_d * scale).reshape(w.shape)
    return out


def landscape_directions(
    model: nn.Module, *, seed: int = 0, mask: Mask | None = None
) -> tuple[Direction, Direction]:
    """Two filter-normalised directions (δ, η) from ``seed``: δ from generator seed ``seed``,
    η from ``seed + 1``. Same seed and architecture ⇒ the same raw draws for every model."""
    return (filter_normalised_direction(model, generator=torch.Generator().manual_seed(seed),
                                        mask=mask),
            filter_normalised_direction(model, generator=torch.Generator().manual_seed(seed + 1),
                                        mask=mask))


@torch.no_grad()
def dataset_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Mean cross-entropy of ``model`` on (x, y), in whatever mode the model is in."""
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(device))
        total += float(nn.functional.cross_entropy(logits.double(), y[i:i + batch_size].to(device),
                                                   reduction="sum"))
    return total / max(1, len(x))


@torch.no_grad()
def loss_surface(
    model: nn.Module,
    directions: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]],
    data_x: torch.Tensor,
    data_y: torch.Tensor,
    *,
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    batch_size: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """f(α, β) = L(θ + αδ + βη) on (``data_x``, ``data_y``): an array (len(alphas),
    len(betas)) with ``[i, j]`` at ``(alphas[i], betas[j])``.

    The model runs in eval mode (restored after); its parameters are restored bit for bit,
    even on an exception. Parameters missing from a direction are not moved.
    """
    delta, eta = directions
    params = dict(model.named_parameters())
    unknown = sorted((set(delta) | set(eta)) - set(params))
    if unknown:
        raise UserError(f"directions name parameters the model does not have: {', '.join(unknown[:5])}")
    for direction in (delta, eta):
        for n, t in direction.items():
            if t.shape != params[n].shape:
                raise UserError(f"direction for {n!r} has shape {tuple(t.shape)}, "
                                f"the parameter {tuple(params[n].shape)}")
    moved = {n: p for n, p in params.items() if n in delta or n in eta}
    saved = {n: p.detach().clone() for n, p in moved.items()}
    zero = {n: torch.zeros_like(p) for n, p in moved.items()}
    dev = {n: (delta.get(n, zero[n]).to(p.device, p.dtype), eta.get(n, zero[n]).to(p.device, p.dtype))
           for n, p in moved.items()}
    alphas, betas = np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)
    out = np.empty((len(alphas), len(betas)), dtype=np.float64)
    grid = [(i, j) for i in range(len(alphas)) for j in range(len(betas))]
    if progress:
        from tqdm import tqdm

        grid = tqdm(grid, desc="loss landscape", leave=False)
    was_training = model.training
    model.eval()
    try:
        for i, j in grid:
            a, b = float(alphas[i]), float(betas[j])
            for n, p in moved.items():
                d, e = dev[n]
                p.copy_(saved[n].add(d, alpha=a).add_(e, alpha=b))
            out[i, j] = dataset_loss(model, data_x, data_y, batch_size=batch_size)
    finally:
        for n, p in moved.items():
            p.copy_(saved[n])
        model.train(was_training)
    return out


def plot_landscapes(
    path: Path | str,
    surfaces: Mapping[str, np.ndarray],
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    *,
    title: str = "",
    levels: int = 20,
    log: bool = True,
) -> None:
    """Contour plots of several surfaces side by side on shared axes and ONE colour scale
    (shared levels and one colour bar), e.g. parent / pruned child / tuned child.

    ``surfaces[name]`` is a :func:`loss_surface` result. With ``log`` the levels are spaced
    evenly in log10 of the loss (landscapes span orders of magnitude away from the minimum).
    The point (0, 0) — the model itself — is marked with a cross.
    """
    from matplotlib.colors import LogNorm, Normalize

    from ..reporting import _save, plt

    if not surfaces:
        raise UserError("no loss surfaces to plot")
    a, b = np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)
    for name, s in surfaces.items():
        if np.shape(s) != (len(a), len(b)):
            raise UserError(f"surface {name!r} has shape {np.shape(s)}, expected ({len(a)}, {len(b)})")
    values = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in surfaces.values()])
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm: Normalize
    if log:
        lo = max(lo, 1e-6)
        hi = max(hi, lo * 1.0001)
        bounds = np.geomspace(lo, hi, levels + 1)
        norm = LogNorm(vmin=lo, vmax=hi)
    else:
        hi = max(hi, lo + 1e-9)
        bounds = np.linspace(lo, hi, levels + 1)
        norm = Normalize(vmin=lo, vmax=hi)
    n = len(surfaces)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.9, 3.6), sharex=True, sharey=True,
                             squeeze=False)
    cs = None
    for ax, (name, s) in zip(axes[0], surfaces.items()):
        z = np.clip(np.asarray(s, dtype=np.float64), lo, hi).T  # contourf wants (len(y), len(x))
        cs = ax.contourf(a, b, z, levels=bounds, norm=norm, cmap="viridis")
        ax.contour(a, b, z, levels=bounds, colors="k", linewidths=0.3, alpha=0.5)
        ax.plot([0], [0], "x", color="w", ms=6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("α (δ)")
    axes[0][0].set_ylabel("β (η)")
    assert cs is not None  # surfaces is not empty: one contour set per surface
    fig.colorbar(cs, ax=list(axes[0]), label="training loss (cross-entropy)", shrink=0.9,
                 format="%.3g")
    fig.suptitle(title, fontsize=10)
    _save(fig, Path(path))
