"""Subnetwork masks: which weights a child keeps (SPEC §1).

A mask is a ``dict[str, torch.BoolTensor]`` keyed by parameter name (as in
``model.named_parameters()``), ``True`` = weight kept. Only *eligible* parameters appear
in it; everything else is untouched by every perturbation.

Sampling draws exactly ``round(density * n)`` weights (local: per tensor; global: one budget
over all eligible tensors) by ranking scores — uniform random scores give a random
subnetwork, ``|W|`` scores give magnitude pruning — so the density a user asks for is the
density they get, and "same seed ⇒ same mask" holds bit for bit on CPU. Structured masks
score and keep whole rows (output neurons / conv filters, dim 0).

Examples:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> m = sample_mask(eligible_parameters(net), 0.5, seed=0)
    >>> round(mask_density(m), 3)
    0.5
    >>> parts = partition_masks(eligible_parameters(net), k=2, seed=0)   # mask and anti-mask
    >>> bool(all((parts[0][n] ^ parts[1][n]).all() for n in parts[0]))
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import numpy as np
import torch
from torch import nn

from ..checks import check_choice, check_fraction
from ..errors import UserError

Mask = dict[str, torch.Tensor]

MASK_SCOPES = ("local", "global")  # one density per tensor, or one budget over all of them
SELECTIONS = ("random", "magnitude")  # which weights a mask keeps
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def eligible_parameters(
    model: nn.Module,
    *,
    include_bias: bool = False,
    include_norm: bool = False,
    exclude: Iterable[str] = (),
) -> dict[str, nn.Parameter]:
    """Parameters a subnetwork may perturb: Linear/Conv weights by default (SPEC §1).

    ``exclude`` holds name prefixes to leave out (e.g. ``("fc3",)`` for an output layer).
    The order is ``named_parameters()`` order, which fixes how seeds map to tensors.
    """
    exclude = tuple(exclude)
    chosen: dict[str, nn.Parameter] = {}
    for mod_name, module in model.named_modules():
        is_weight_layer = isinstance(module, _WEIGHT_LAYERS)
        is_norm = isinstance(module, _NORM_LAYERS)
        if not (is_weight_layer or (include_norm and is_norm)):
            continue
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias" and not (include_bias or is_norm):
                continue
            if any(full.startswith(e) for e in exclude):
                continue
            chosen[full] = p
    # Keep named_parameters() order regardless of module traversal details.
    order = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    return dict(sorted(chosen.items(), key=lambda kv: order.get(kv[0], 0)))


def _check_density(density: float) -> None:
    check_fraction(density, "density")


def _row_view(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(-1, 1)


def _unit_scores(
    params: Mapping[str, torch.Tensor], structured: bool, generator: torch.Generator | None,
    by_magnitude: bool,
) -> dict[str, torch.Tensor]:
    """One score per selectable unit (weight, or row when structured), on CPU."""
    scores = {}
    for name, p in params.items():
        if by_magnitude:
            w = p.detach().abs().float().cpu()
            s = _row_view(w).sum(dim=1) if structured else w.reshape(-1)
        else:
            n = p.shape[0] if structured else p.numel()
            s = torch.rand(n, generator=generator)
        scores[name] = s
    return scores


def _expand(keep_units: torch.Tensor, p: torch.Tensor, structured: bool) -> torch.Tensor:
    if structured:
        rows = keep_units.view(-1, *([1] * (p.dim() - 1)))
        return rows.expand(p.shape).clone()
    return keep_units.view(p.shape)


def _top_fraction(scores: torch.Tensor, density: float, sizes: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the highest-scoring units until ``density`` of the weights (unit sizes) are kept."""
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    if sizes is None:
        n_keep = min(max(int(round(density * scores.numel())), 1), scores.numel())
        keep[torch.topk(scores, n_keep, sorted=False).indices] = True
        return keep
    order = torch.argsort(scores, descending=True, stable=True)
    budget = density * float(sizes.sum())
    cum = torch.cumsum(sizes[order].double(), 0)
    # Round to the nearest unit boundary: a unit is kept if more than half of it fits.
    n_keep = max(int((cum - sizes[order].double() / 2 <= budget).sum()), 1)
    keep[order[:n_keep]] = True
    return keep


def sample_mask(
    params: Mapping[str, torch.Tensor],
    density: float,
    *,
    seed: int | None = None,
    structured: bool = False,
    scope: str = "local",
    selection: str = "random",
) -> Mask:
    """Keep a fraction ``density`` of eligible weights (or rows if ``structured``).

    ``scope="local"`` gives every tensor the same density; ``"global"`` ranks all units of all
    tensors together (for ``selection="magnitude"`` large-magnitude layers keep more).
    ``selection`` is ``"random"`` (needs ``seed``) or ``"magnitude"`` (L1, deterministic).
    Masks live on each parameter's device.
    """
    _check_density(density)
    check_choice(scope, MASK_SCOPES, "scope")
    check_choice(selection, SELECTIONS, "selection")
    if selection == "random" and seed is None:
        raise UserError("a random mask needs an explicit seed")
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    scores = _unit_scores(params, structured, gen, selection == "magnitude")
    if scope == "local":
        keep = {n: _top_fraction(s, density) for n, s in scores.items()}
    else:
        names = list(scores)
        # Structured units differ in size (a conv filter vs a wide linear row): the budget
        # counts weights, not units.
        sizes = torch.cat([
            torch.full((scores[n].numel(),), params[n].numel() // max(scores[n].numel(), 1))
            for n in names
        ]) if structured else None
        flat = _top_fraction(torch.cat([scores[n] for n in names]), density, sizes)
        keep = dict(zip(names, torch.split(flat, [scores[n].numel() for n in names])))
    return {n: _expand(keep[n], p, structured).to(p.device) for n, p in params.items()}


def partition_masks(
    params: Mapping[str, torch.Tensor],
    k: int,
    *,
    seed: int,
    structured: bool = False,
) -> list[Mask]:
    """Neural partitioning: ``k`` disjoint masks that together cover every eligible weight.

    Each unit (weight, or row if ``structured``) goes to exactly one of ``k`` groups, with
    group sizes balanced to within one unit per tensor, so each mask has density ≈ 1/k.
    ``k=2`` gives a mask and its anti-mask (SPEC §1).
    """
    if int(k) != k or k < 2:
        raise UserError(f"a partition needs k >= 2 groups, got {k}")
    gen = torch.Generator().manual_seed(int(seed))
    masks: list[Mask] = [{} for _ in range(k)]
    for name, p in params.items():
        n = p.shape[0] if structured else p.numel()
        group = torch.empty(n, dtype=torch.long)
        group[torch.randperm(n, generator=gen)] = torch.arange(n) % k
        for i in range(k):
            masks[i][name] = _expand(group == i, p, structured).to(p.device)
    return masks


def complement(mask: Mask) -> Mask:
    """The anti-mask 1 − M."""
    return {n: ~m for n, m in mask.items()}


def mask_density(mask: Mask) -> float:
    """Fraction of kept weights over all tensors of the mask."""
    kept = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    return kept / total if total else 0.0


def check_partition(masks: list[Mask]) -> None:
    """Raise ``ValueError`` unless the masks are pairwise disjoint and cover every weight."""
    for name in masks[0]:
        count = cast(torch.Tensor, sum(m[name].to(torch.int8) for m in masks))  # masks is non-empty
        if not bool((count == 1).all()):
            raise ValueError(f"masks overlap or leave gaps in {name}")


def mask_distance(a: Mask, b: Mask) -> float:
    """Compositional diversity CD(A, B) = sqrt(Σ|a_i − b_i|) (SPEC §1)."""
    return float(sum(int((a[n] ^ b[n]).sum()) for n in a)) ** 0.5


def total_diversity(masks: list[Mask]) -> float:
    """TD = Σ_i Σ_j CD(M_i, M_j) over ordered pairs."""
    return sum(mask_distance(a, b) for a in masks for b in masks)


def pack_mask(mask: Mask) -> dict[str, torch.Tensor]:
    """Store a mask as bits: one uint8 tensor per parameter (8 weights per byte)."""
    return {
        n: torch.from_numpy(np.packbits(m.detach().cpu().numpy().reshape(-1)))
        for n, m in mask.items()
    }


def unpack_mask(packed: Mapping[str, torch.Tensor], shapes: Mapping[str, torch.Size]) -> Mask:
    """Inverse of :func:`pack_mask`; ``shapes`` gives each tensor's shape."""
    out = {}
    for n, bits in packed.items():
        shape = tuple(shapes[n])
        count = int(np.prod(shape)) if shape else 1
        flat = np.unpackbits(bits.cpu().numpy(), count=count).astype(bool)
        out[n] = torch.from_numpy(flat).reshape(shape)
    return out
