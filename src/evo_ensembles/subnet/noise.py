"""Sparse Gaussian perturbations of a subnetwork (SPEC §2): Ŵ = W ± N∘M.

The noise N ~ Normal(μ, σ²) is drawn from ``noise_seed`` for *every* eligible tensor, in
``named_parameters()`` order, whatever the mask: so the children of one draw — W + N∘M,
W + N∘(1−M), W − N∘M, W − N∘(1−M) — share the same N, their deltas sum to zero exactly
(negation and masking are exact in floating point), and a child regenerates bit for bit
from its descriptor.

Children are evaluated *in place*: :class:`InPlacePerturber` keeps one copy of the
parent's eligible tensors, perturbs the live model, and restores it with ``copy_`` (an
exact revert), so memory does not grow with the number of children evaluated.

Examples:
    >>> import torch.nn as nn
    >>> from evo_ensembles.subnet import ChildSpec, eligible_parameters
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> plus = ChildSpec("noise", mask_seed=1, density=0.5, k=2, part=0, sigma=0.1, noise_seed=2)
    >>> minus = ChildSpec("noise", mask_seed=1, density=0.5, k=2, part=0, sigma=0.1, noise_seed=2, sign=-1)
    >>> params = eligible_parameters(net)
    >>> d1, d2 = noise_delta(params, plus), noise_delta(params, minus)
    >>> all(bool((d1[n] + d2[n] == 0).all()) for n in d1)
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from ..checks import check_nonneg
from ..errors import UserError
from .descriptor import ChildSpec
from .masks import Mask, eligible_parameters


def sample_noise(
    params: Mapping[str, torch.Tensor], sigma: float, seed: int, mu: float = 0.0
) -> dict[str, torch.Tensor]:
    """Dense noise N ~ Normal(μ, σ²) for every tensor of ``params`` (CPU generator, float32).

    Drawn on CPU so the same seed gives the same noise on every device.
    """
    check_nonneg(sigma, "sigma")
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, p in params.items():
        z = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        out[name] = (z.mul_(sigma).add_(mu) if (sigma != 1.0 or mu != 0.0) else z).to(p.device, p.dtype)
    return out


def noise_delta(
    params: Mapping[str, torch.Tensor], spec: ChildSpec, mask: Mask | None = None
) -> dict[str, torch.Tensor]:
    """The child's perturbation ``sign · N∘M`` per tensor (``mask`` saves regenerating it)."""
    if spec.kind != "noise":
        raise UserError(f"a noise perturbation needs a 'noise' child, got {spec.kind!r}")
    if spec.noise_seed is None:
        raise UserError("a noisy child needs a noise_seed")
    mask = spec.mask(params) if mask is None else mask
    noise = sample_noise(params, spec.sigma, spec.noise_seed, spec.mu)
    out = {}
    for name, n in noise.items():  # drawn for every tensor, so dense_layers keep the others' noise
        if name not in mask:
            continue
        d = n * mask[name].to(n.dtype)
        out[name] = d if spec.sign > 0 else d.neg_()
    return out


@torch.no_grad()
def add_noise_(params: Mapping[str, torch.Tensor], spec: ChildSpec, mask: Mask | None = None) -> None:
    """Perturb ``params`` in place: W ← W + sign · N∘M."""
    for name, d in noise_delta(params, spec, mask).items():
        params[name].add_(d)


def noisy_child(parent: nn.Module, spec: ChildSpec, params_kw: Mapping | None = None) -> nn.Module:
    """A standalone copy of the parent with the child's noise added (costs one model copy)."""
    import copy

    child = copy.deepcopy(parent)
    add_noise_(eligible_parameters(child, **dict(params_kw or {})), spec)
    return child


class InPlacePerturber:
    """Turns the parent into any child and back, without copying the model per child.

    Holds one copy of the eligible tensors (constant memory, whatever the population);
    :meth:`child` is a context manager that perturbs the live model and always restores it
    exactly, even if evaluation raises.

    Examples:
        >>> import torch.nn as nn
        >>> net = nn.Linear(3, 2)
        >>> before = net.weight.detach().clone()
        >>> spec = ChildSpec("noise", mask_seed=0, density=0.5, sigma=0.1, noise_seed=1)
        >>> with InPlacePerturber(net).child(spec):
        ...     changed = not torch.equal(net.weight, before)
        >>> changed, torch.equal(net.weight, before)
        (True, True)
    """

    def __init__(self, model: nn.Module, *, include_bias: bool = False, include_norm: bool = False,
                 exclude: tuple[str, ...] = ()) -> None:
        self.model = model
        self.params = eligible_parameters(model, include_bias=include_bias,
                                          include_norm=include_norm, exclude=exclude)
        if not self.params:
            raise UserError("the model has no eligible parameters to perturb")
        self._backup = {n: p.detach().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def restore(self) -> None:
        """Put the parent's weights back (exact copy)."""
        for name, p in self.params.items():
            p.copy_(self._backup[name])

    @contextmanager
    def child(self, spec: ChildSpec, mask: Mask | None = None) -> Iterator[nn.Module]:
        """Within the block the model *is* the child; afterwards it is the parent again."""
        try:
            add_noise_(self.params, spec, mask)
            yield self.model
        finally:
            self.restore()
