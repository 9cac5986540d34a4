"""Probabilistic masks for Stochastic Subnetwork Ensembles (SPEC §4). Pure tensor code.

A child keeps a probability tensor ``P`` per eligible parameter; every training forward
pass uses ``W ∘ Bernoulli(P)``. ``P`` is annealed from its start value ``P0`` to a binary
target mask ``X`` (:class:`AnnealPlan`), after which the child is an ordinary sparse child.

Start values:
- temperature annealing: kept entries of ``X`` stay at 1, pruned entries start at ``T0``
  ("reverse dropout"); the *symmetric* variant also starts kept entries at ``1 − T0``.
- random annealing: ``P0 ~ U[0, 1]``; the lowest ``sparsity`` fraction (per tensor) anneal
  to 0, the rest to 1.
- mixture of Gaussians: like random annealing, but ``P0`` comes from an index matrix that
  picks one of two Normal(μ_k, σ_k²) per entry (clamped to [0, 1]).
- partitioned probabilities: children of one k-way partition take ``P`` and ``1 − P``
  (k = 2) or the components of a flat Dirichlet draw (k > 2); they sum to 1 per entry and
  each entry's target goes to the child with the largest probability, so the targets are
  disjoint and cover every weight.

Examples:
    >>> import torch.nn as nn
    >>> from evo_ensembles.subnet import ChildSpec, eligible_parameters
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> spec = ChildSpec("stochastic", mask_seed=1, density=0.5, anneal="temperature", t0=0.5)
    >>> plan = anneal_plan(spec, eligible_parameters(net), steps=10)
    >>> sorted(plan.probabilities(0)["0.weight"].unique().tolist())
    [0.5, 1.0]
    >>> bool(all(plan.probabilities(10)[n].eq(plan.target[n]).all() for n in plan.target))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import torch

from ..checks import check_known, check_probability
from ..errors import UserError
from .anneal import anneal_value, check_schedule, remaining_fraction
from .masks import Mask, _top_fraction

Probs = dict[str, torch.Tensor]
ANNEALS = ("temperature", "temperature-symmetric", "random", "mog")
MOG_MU = (0.25, 0.75)
MOG_SIGMA = (0.15, 0.15)


def check_t0(t0: float) -> None:
    """Raise :class:`UserError` unless the start temperature is a probability."""
    check_probability(t0, "T0")


def uniform_probabilities(params: Mapping[str, torch.Tensor], *, seed: int) -> Probs:
    """``P ~ U[0, 1]`` per entry, from ``seed`` (on CPU, so the same on every device)."""
    gen = torch.Generator().manual_seed(int(seed))
    return {n: torch.rand(p.shape, generator=gen) for n, p in params.items()}


def mog_probabilities(
    params: Mapping[str, torch.Tensor],
    *,
    seed: int,
    mu: Sequence[float] = MOG_MU,
    sigma: Sequence[float] = MOG_SIGMA,
) -> Probs:
    """Mixture-of-Gaussians ``P``: an index matrix picks Normal(mu[i], sigma[i]²) per entry.

    Examples:
        >>> import torch
        >>> p = mog_probabilities({"w": torch.zeros(1000)}, seed=0)["w"]
        >>> bool((p >= 0).all() and (p <= 1).all())
        True
    """
    if len(mu) != len(sigma) or len(mu) < 1 or any(s < 0 for s in sigma):
        raise UserError(f"mixture needs matching means and non-negative sigmas, got {mu}, {sigma}")
    gen = torch.Generator().manual_seed(int(seed))
    mus, sigmas = torch.tensor(mu, dtype=torch.float32), torch.tensor(sigma, dtype=torch.float32)
    out = {}
    for n, p in params.items():
        idx = torch.randint(len(mu), p.shape, generator=gen)
        z = torch.randn(p.shape, generator=gen)
        out[n] = (mus[idx] + sigmas[idx] * z).clamp_(0.0, 1.0)
    return out


def partition_probabilities(
    params: Mapping[str, torch.Tensor], k: int, *, seed: int, base: str = "random"
) -> list[Probs]:
    """``k`` probability tensors per parameter that sum to 1 entry by entry.

    ``k = 2`` gives ``P`` and ``1 − P`` with ``P`` uniform (``base="random"``) or a Gaussian
    mixture (``base="mog"``); ``k > 2`` gives a flat Dirichlet draw (normalised exponentials).

    Examples:
        >>> import torch
        >>> a, b, c = partition_probabilities({"w": torch.zeros(5)}, 3, seed=0)
        >>> bool(torch.allclose(a["w"] + b["w"] + c["w"], torch.ones(5)))
        True
    """
    if int(k) != k or k < 2:
        raise UserError(f"a partition needs k >= 2 groups, got {k}")
    if k == 2:
        probs = (mog_probabilities if base == "mog" else uniform_probabilities)(params, seed=seed)
        return [probs, {n: 1.0 - t for n, t in probs.items()}]
    if base != "random":
        raise UserError(f"{base!r} probabilities partition only 2 ways; got k={k}")
    gen = torch.Generator().manual_seed(int(seed))
    parts: list[Probs] = [{} for _ in range(k)]
    for n, p in params.items():
        e = -torch.log1p(-torch.rand((k, *p.shape), generator=gen))  # Exp(1): Dirichlet(1,…,1)
        e = e / e.sum(0, keepdim=True)
        for i in range(k):
            parts[i][n] = e[i]
    check_probability_partition(parts)
    return parts


def check_probability_partition(
    parts: Sequence[Mapping[str, torch.Tensor]], atol: float = 1e-5
) -> None:
    """Raise :class:`UserError` unless the probabilities sum to 1 entry by entry.

    Examples:
        >>> import torch
        >>> check_probability_partition([{"w": torch.full((2,), 0.5)}, {"w": torch.full((2,), 0.4)}])
        Traceback (most recent call last):
        evo_ensembles.errors.UserError: partitioned probabilities of w sum to 0.9 (max error 0.1), not 1
    """
    for n in parts[0]:
        total = cast(torch.Tensor, sum(p[n].double() for p in parts))  # parts is non-empty
        err = float((total - 1.0).abs().max())
        if err > atol:
            raise UserError(
                f"partitioned probabilities of {n} sum to {float(total.mean()):.4g} "
                f"(max error {err:.4g}), not 1"
            )


def targets_from_probabilities(probs: Probs, density: float) -> Mask:
    """Keep the ``density`` fraction of entries with the highest ``P`` in each tensor."""
    return {n: _top_fraction(p.reshape(-1), density).view(p.shape) for n, p in probs.items()}


def partition_targets(parts: Sequence[Probs]) -> list[Mask]:
    """Each entry goes to the child with the largest probability (ties: the lowest index)."""
    out: list[Mask] = [{} for _ in parts]
    for n in parts[0]:
        winner = torch.stack([p[n] for p in parts]).argmax(0)
        for i in range(len(parts)):
            out[i][n] = winner == i
    return out


@dataclass
class AnnealPlan:
    """``P`` going from ``start`` to the binary ``target`` over ``steps`` optimizer steps.

    ``probabilities(t)`` is ``target + (start − target) · r(t)`` per entry, so it equals
    ``start`` at ``t = 0`` and ``target`` (as 0.0/1.0) for every ``t >= steps``.
    """

    start: Probs
    target: Mask
    schedule: str
    steps: int

    def __post_init__(self) -> None:
        check_schedule(self.schedule)
        if int(self.steps) != self.steps or self.steps < 1:
            raise UserError(f"annealing needs a positive number of steps, got {self.steps}")
        self._end = {n: m.to(self.start[n].dtype) for n, m in self.target.items()}
        self._gap = {n: self.start[n] - e for n, e in self._end.items()}

    def probabilities(self, t: int) -> Probs:
        """``P`` at step ``t`` (fresh tensors; binary exactly from ``t = steps`` on)."""
        r = remaining_fraction(self.schedule, t, self.steps)
        if r == 0.0:
            return {n: e.clone() for n, e in self._end.items()}
        if r == 1.0:
            return {n: p.clone() for n, p in self.start.items()}
        return {n: e + r * self._gap[n] for n, e in self._end.items()}

    def to(self, device: torch.device | str) -> AnnealPlan:
        """The same plan with its tensors on ``device``."""
        return AnnealPlan(
            {n: p.to(device) for n, p in self.start.items()},
            {n: m.to(device) for n, m in self.target.items()},
            self.schedule,
            self.steps,
        )


def temperature_start(target: Mask, t0: float, *, symmetric: bool = False) -> Probs:
    """Start ``P``: pruned entries at ``t0``; kept entries at 1 (or ``1 − t0`` if symmetric)."""
    check_t0(t0)
    kept = 1.0 - t0 if symmetric else 1.0
    return {
        n: torch.where(m, torch.tensor(kept), torch.tensor(float(t0))) for n, m in target.items()
    }


def anneal_plan(spec, params: Mapping[str, torch.Tensor], steps: int) -> AnnealPlan:
    """The annealing plan of a ``kind="stochastic"`` :class:`ChildSpec` over ``params``.

    Temperature annealing targets the spec's own mask (random, magnitude or partition);
    random / mixture annealing derive start and target from ``mask_seed`` (shared by the
    members of a partition, which take ``P``, ``1 − P``, …).
    """
    check_known(spec.anneal, ANNEALS, "annealing")
    check_schedule(spec.anneal_schedule)
    if spec.anneal.startswith("temperature"):
        target = {n: m.cpu() for n, m in spec.mask(params).items()}
        start = temperature_start(target, spec.t0, symmetric=spec.anneal == "temperature-symmetric")
    else:
        if spec.structured:
            raise UserError(
                f"{spec.anneal} annealing draws one probability per weight; it cannot be structured"
            )
        base = "mog" if spec.anneal == "mog" else "random"
        if spec.k is not None:
            parts = partition_probabilities(params, spec.k, seed=spec.mask_seed, base=base)
            start, target = parts[spec.part], partition_targets(parts)[spec.part]
        else:
            draw = mog_probabilities if base == "mog" else uniform_probabilities
            start = draw(params, seed=spec.mask_seed)
            target = targets_from_probabilities(start, spec.density)
        if spec.dense_layers:  # drawn over all tensors (same streams), then the scope applied
            keep = spec.mask_names(params)
            start = {n: p for n, p in start.items() if n in keep}
            target = {n: m for n, m in target.items() if n in keep}
    return AnnealPlan(start, target, spec.anneal_schedule, steps)


def sample_bernoulli(probs: Probs, generator: torch.Generator) -> Mask:
    """One Bernoulli(P) mask per tensor (``rand < P``: P = 1 always keeps, P = 0 never)."""
    return {
        n: torch.rand(p.shape, generator=generator, device=p.device) < p for n, p in probs.items()
    }


def temperature_at(t0: float, schedule: str, t: int, steps: int) -> float:
    """The temperature of pruned entries at step ``t`` (``t0`` → 0), for logs and plots."""
    return anneal_value(schedule, t0, 0.0, t, steps)
