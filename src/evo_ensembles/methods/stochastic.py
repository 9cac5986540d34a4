"""Stochastic Subnetwork Ensembles and the pruning baselines they are compared with (SPEC §4).

Three ways to turn a copy of the parent into a sparse child, each a callback of the one
training loop :func:`~evo_ensembles.train.fit`, stepped per batch:

- :class:`~evo_ensembles.methods.sparse.KeepPruned` — one-shot pruning (prune, then tune).
- :class:`IterativePruning` — an equal share of the pruned weights is removed at the start
  of each of the first E_p epochs (random order, or by the current L1 magnitude).
- :class:`StochasticMasks` — every training forward pass uses ``W ∘ Bernoulli(P)`` with
  ``P`` annealed to the binary target mask over E_a epochs; afterwards the child is an
  ordinary sparse child (pruned weights exactly zero, held there by ``KeepPruned``).

:func:`build_child` picks the right one from a :class:`~evo_ensembles.subnet.ChildSpec`,
and :func:`anneal_and_tune` builds an ensemble (it is ``prune_and_tune`` with this builder).

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles import ArrayData, TrainConfig, make_child_specs
    >>> data = ArrayData(torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,)))
    >>> parent = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> specs = make_child_specs(2, 0.5, partition=True, seed=0, kind="stochastic",
    ...                          anneal="temperature", t0=0.5, anneal_epochs=1)
    >>> ens = anneal_and_tune(parent, specs, data, TrainConfig(epochs=2, batch_size=16), progress=False)
    >>> len(ens)
    2
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch
from torch import nn

from ..data import ArrayData
from ..ensemble import Ensemble
from ..errors import UserError
from ..subnet import (
    AnnealPlan,
    ChildSpec,
    Mask,
    anneal_plan,
    eligible_parameters,
    sample_bernoulli,
)
from ..train import Callback, TrainConfig
from .sparse import KeepPruned, prune_and_tune, pruned_child, steps_per_epoch

_GOLDEN = 0x9E3779B97F4A7C15  # spreads consecutive steps over the seed space


class StochasticMasks(Callback):
    """Trains with a fresh ``Bernoulli(P(t))`` mask on every forward pass, then prunes.

    Mechanism (parameter identity kept, so the optimizer built by ``fit`` keeps working):
    the callback owns a dense copy ``D`` of the masked weights while annealing lasts.
    Before each batch the parameter is overwritten with ``D ∘ B`` (B a fresh Bernoulli(P)
    draw from a ``torch.Generator`` seeded by (seed, step), so runs are reproducible); a
    gradient hook multiplies the gradient by ``B`` (dropped weights get exactly zero
    gradient, also in Adam's moments); after the optimizer step the update is folded back
    into ``D`` (``D ← D ∘ (1 − B) + param``). Coupled weight decay therefore skips a weight
    in the steps it is dropped, as it is absent from that forward pass.

    Between batches — so for validation inside ``fit`` and any evaluation after it — the
    parameter holds ``D ∘ X``, the *binary target subnetwork*: it is the deterministic
    child that annealing converges to (``P`` equals ``X`` at the end), so an evaluation
    during annealing measures the child we will keep rather than a random draw or the
    expected network ``D ∘ P``, which no member ever is.

    Cost per batch: one uniform draw, one compare, three elementwise products/adds per
    masked tensor and one extra copy of the masked weights while annealing
    (``benchmarks/table6_1.py --cost`` measures the tuning-epoch ratio).

    Resumable: the dense copy and whether annealing has finished are part of the training
    checkpoint (:meth:`state_dict`); the Bernoulli draws depend only on (seed, step).
    """

    def __init__(
        self,
        params: Mapping[str, torch.Tensor],
        plan: AnnealPlan,
        seed: int,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.params = dict(params)
        self.steps_per_epoch = steps_per_epoch
        self.plan = plan
        self.seed = int(seed)
        self._keep = KeepPruned(params, plan.target)
        self._dense: dict[str, torch.Tensor] | None = None
        self._sample: Mask = {}
        self._hooks: list = []
        self.done = False

    @property
    def mask(self) -> Mask:
        """The binary target subnetwork ``X`` (the child's mask once annealing ends)."""
        return self._keep.mask

    def probabilities(self, step: int) -> dict[str, torch.Tensor]:
        """``P`` at optimizer step ``step`` (binary from ``plan.steps`` on)."""
        return self.plan.probabilities(step)

    def on_train_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        device = next(iter(self.params.values())).device
        self.plan = self.plan.to(device)
        self._target = {n: m.to(device) for n, m in self.plan.target.items()}
        self._gen = torch.Generator(device=device)
        self._dense = {n: p.detach().clone() for n, p in self.params.items()}
        self._hooks = [p.register_hook(self._grad_hook(n)) for n, p in self.params.items()]
        self._show_target()

    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> torch.Tensor | None:
            b = self._sample.get(name)
            return None if b is None else grad * b

        return hook

    @torch.no_grad()
    def _show_target(self) -> None:
        assert self._dense is not None  # set by on_train_start until _finish
        for n, p in self.params.items():
            torch.mul(self._dense[n], self._target[n], out=p.data)

    @torch.no_grad()
    def on_batch_start(self, model: nn.Module, step: int) -> None:
        if self.done:
            return
        if step >= self.plan.steps or self._dense is None:
            self._finish()
            return
        self._gen.manual_seed((self.seed + step * _GOLDEN) % 2**63)
        self._sample = sample_bernoulli(self.plan.probabilities(step), self._gen)
        for n, p in self.params.items():
            torch.mul(self._dense[n], self._sample[n], out=p.data)

    @torch.no_grad()
    def on_after_step(self, model: nn.Module, step: int) -> None:
        if self.done:
            self._keep.on_after_step(model, step)
            return
        assert self._dense is not None  # not done: on_train_start set it and _finish has not run
        for n, p in self.params.items():
            # p = D∘B − update, so D∘(1−B) + p = D − update: the dense weights, updated.
            self._dense[n].masked_fill_(self._sample[n], 0.0).add_(p.data)
        self._sample = {}
        self._show_target()
        if step + 1 >= self.plan.steps:
            self._finish()

    def _finish(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._sample, self._dense = [], {}, None
        self._keep._zero()
        self.done = True

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.done or self._dense is None:
            return {"done": torch.ones(())}
        return {f"dense.{n}": d for n, d in self._dense.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "done" in state:
            self._finish()
            return
        assert self._dense is not None  # loaded after on_train_start (see train.loop.train)
        for n, d in self._dense.items():
            d.copy_(state[f"dense.{n}"])
        self._show_target()

    def on_epoch_end(self, model: nn.Module, epoch: int, stats: dict) -> None:
        if self.steps_per_epoch:  # log how much of the network a draw keeps, on average
            probs = self.plan.probabilities((epoch + 1) * self.steps_per_epoch)
            stats["expected_density"] = sum(float(p.sum()) for p in probs.values()) / sum(
                p.numel() for p in probs.values()
            )


class IterativePruning(KeepPruned):
    """Iterative pruning: at the start of epoch ``e < E_p`` keep density
    ``1 − (1 − d)(e + 1)/E_p``, so the target density ``d`` is reached at the start of
    epoch E_p − 1 and held (exact zeros) from then on.

    Random selection reuses the spec's seed, so the masks are nested and the last one is the
    spec's own mask; magnitude selection re-ranks the *current* weights each time (L1,
    classic iterative magnitude pruning) and only ever removes more.
    """

    def __init__(
        self, params: Mapping[str, torch.Tensor], spec: ChildSpec, steps_per_epoch: int
    ) -> None:
        names = spec.mask_names(params)  # the pruning scope: dense_layers are never pruned
        super().__init__(
            params,
            {n: torch.ones(p.shape, dtype=torch.bool, device=p.device)
             for n, p in params.items() if n in names},
        )
        self.spec = spec
        self.steps_per_epoch = int(steps_per_epoch)
        self.level = -1

    def density_at(self, level: int) -> float:
        """Density kept after the pruning step at the start of epoch ``level``."""
        if level >= self.spec.prune_epochs - 1:
            return self.spec.density  # exactly, not 1 − (1 − d) in floating point
        return 1.0 - (1.0 - self.spec.density) * (level + 1) / self.spec.prune_epochs

    @torch.no_grad()
    def on_batch_start(self, model: nn.Module, step: int) -> None:
        level = min(step // self.steps_per_epoch, self.spec.prune_epochs - 1)
        if level == self.level:
            return
        self.level = level
        nxt = replace(self.spec, density=self.density_at(level), prune_epochs=0).mask(self.params)
        self.pruned = {n: self.pruned[n] | ~nxt[n].to(self.pruned[n].device) for n in self.pruned}
        self._zero()


def build_child(
    parent: nn.Module,
    spec: ChildSpec,
    cfg: TrainConfig,
    steps: int,
    *,
    eligible: Mapping | None = None,
) -> tuple[nn.Module, KeepPruned | StochasticMasks]:
    """A copy of ``parent`` and the callback that makes it the child ``spec`` describes.

    ``steps`` is the optimizer steps per epoch (``steps_per_epoch(len(train), batch)``). The callback's
    ``mask`` is the child's mask (after training, for iterative magnitude pruning).

    Examples:
        >>> import torch.nn as nn
        >>> from evo_ensembles import TrainConfig
        >>> spec = ChildSpec("prune", mask_seed=0, density=0.5, prune_epochs=2)
        >>> child, cb = build_child(nn.Linear(4, 2), spec, TrainConfig(epochs=2), steps=3)
        >>> type(cb).__name__
        'IterativePruning'
    """
    if spec.kind == "noise":
        raise UserError("noisy children are not tuned; use noisy_ensemble")
    if spec.kind == "prune" and spec.prune_epochs == 0:
        return pruned_child(parent, spec, cfg, steps, eligible=eligible)
    child = copy.deepcopy(parent)
    eligible_params = eligible_parameters(child, **(eligible or {}))
    if spec.kind == "prune":
        if spec.prune_epochs > cfg.epochs:
            raise UserError(
                f"iterative pruning over {spec.prune_epochs} epochs needs at least as "
                f"many tuning epochs, got {cfg.epochs}"
            )
        return child, IterativePruning(eligible_params, spec, steps)
    if spec.anneal_epochs > cfg.epochs:
        raise UserError(
            f"annealing over {spec.anneal_epochs} epochs needs at least as many "
            f"tuning epochs, got {cfg.epochs}"
        )
    plan = anneal_plan(spec, eligible_params, spec.anneal_epochs * steps)
    params = {n: eligible_params[n] for n in plan.target}  # dense_layers: never masked (still trained)
    return child, StochasticMasks(params, plan, spec.bernoulli_seed, steps)


def anneal_and_tune(
    parent: nn.Module,
    specs: Sequence[ChildSpec],
    train: ArrayData,
    cfg: TrainConfig,
    **kwargs,
) -> Ensemble:
    """Build an ensemble of children tuned with stochastic masks (or any pruning baseline).

    Takes the arguments of :func:`~evo_ensembles.prune_and_tune`; each spec may be a
    one-shot or iterative ``"prune"`` child or a ``"stochastic"`` child.
    """
    return prune_and_tune(parent, specs, train, cfg, child_factory=build_child, **kwargs)



# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "stochastic", "title": "Stochastic Subnetwork Ensemble", "function": "build_child",
     "summary": "children with probabilistic masks annealed to binary subnetworks while they tune",
     "reader": "subnet"},
]


__all__ = [
    "IterativePruning",
    "StochasticMasks",
    "anneal_and_tune",
    "build_child",
    "steps_per_epoch",
]
