"""Pruning: zero the weights outside a mask, in place, without copying storage."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .masks import Mask


@torch.no_grad()
def apply_mask(params: Mapping[str, torch.Tensor], mask: Mask) -> None:
    """Multiply each masked parameter by its mask in place (pruned weights become 0.0).

    Parameter identity is kept, so optimizers built on the model keep working.
    """
    for name, m in mask.items():
        p = params[name]
        p.masked_fill_(~m.to(p.device), 0.0)


def masked_fraction_zero(params: Mapping[str, torch.Tensor], mask: Mask) -> bool:
    """True when every pruned weight is exactly zero."""
    return all(bool((params[n][~m.to(params[n].device)] == 0).all()) for n, m in mask.items())
