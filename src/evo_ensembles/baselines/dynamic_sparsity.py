"""Dynamic sparse training (DST) machinery: ERK layer densities, random sparse masks, and the
prune-and-regrow callback (SET / RigL style, as in FreeTickets, Liu et al. 2022, §3 and App. A).

A sparse network keeps a fixed number of active weights per layer. Every ``update_interval``
optimizer steps each layer drops a ``death_rate`` fraction of its active weights with the
smallest magnitude and regrows as many inactive ones, chosen by the largest magnitude of the
current (dense) gradient (RigL) or at random (SET). Regrown weights start at exactly zero.

Differences from the reference code (VITA-Group/FreeTickets ``sparselearning/core.py``),
each on purpose:

- the cosine decay of the death rate is applied (the reference computes it and then passes
  the undecayed ``args.death_rate`` to ``truncate_weights``);
- the optimizer state (SGD momentum, Adam moments, any per-weight buffer) of pruned and of
  regrown weights is cleared (the reference keeps it: a regrown weight restarts with the
  momentum it gathered while inactive);
- counts are exact: each layer keeps exactly ``round(density · n)`` weights from the start
  and after every update (the reference draws Bernoulli masks and thresholds magnitudes,
  so ties and chance move the density);
- layers that ERK makes dense (density 1) are left alone by updates (the reference zeroes
  their smallest weights and "regrows" them at zero);
- an update due at the very last step is skipped (nothing would train the regrown weights).

The reference never stops updating before the end of training, and neither does this.

Examples:
    >>> import torch.nn as nn
    >>> from evo_ensembles.subnet import eligible_parameters
    >>> net = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> erk_densities(eligible_parameters(net), 0.5)     # the small output layer is made dense
    {'0.weight': 0.4375, '2.weight': 1.0}
    >>> m = erk_mask(eligible_parameters(net), 0.5, seed=0)
    >>> [int(v.sum()) for v in m.values()], death_rate_at(0.5, 50, 100)
    ([224, 64], 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..checks import check_choice, check_fraction, check_positive_int, check_probability
from ..data import DataSplits
from ..errors import UserError
from ..flops import mask_densities, per_example, rigl_update_flops, step_flops
from ..subnet import Mask, derive_seed
from ..train import Callback
from ..train.loop import Objective, cross_entropy
from .common import sample_batch

REGROW = ("gradient", "random")
DECAYS = ("cosine", "constant")
_REGROW_STREAM = 0x5E7  # derive_seed(seed, stream, update step, layer): random regrowth


def erk_densities(params: Mapping[str, torch.Tensor], density: float) -> dict[str, float]:
    """Erdős–Rényi-kernel densities: layer ``l`` gets ``ε · Σ dims / Π dims`` (for a conv,
    ``(n_in + n_out + kh + kw) / (n_in·n_out·kh·kw)``), with ``ε`` set so the kept weights total
    ``density ×`` all weights; a layer whose density would exceed 1 is made dense and ``ε`` is
    solved again over the rest, until none exceeds 1 (Evci et al. 2020, App. D)."""
    check_fraction(density, "density")
    sizes = {n: p.numel() for n, p in params.items()}
    raw = {n: sum(p.shape) / p.numel() for n, p in params.items()}
    dense: set[str] = set()
    while True:
        sparse = [n for n in params if n not in dense]
        if not sparse:
            return {n: 1.0 for n in params}
        # ε · Σ_sparse raw·N = density·Σ_all N − Σ_dense N
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        eps = budget / sum(raw[n] * sizes[n] for n in sparse)
        over = [n for n in sparse if eps * raw[n] > 1.0]
        if not over:
            return {n: 1.0 if n in dense else eps * raw[n] for n in params}
        dense.update(over)


def erk_mask(params: Mapping[str, torch.Tensor], density: float, *, seed: int) -> Mask:
    """A random mask keeping exactly ``round(d_l · n_l)`` weights (at least one) of each tensor,
    ``d_l`` from :func:`erk_densities`; same seed ⇒ same mask."""
    gen = torch.Generator().manual_seed(int(seed))
    mask = {}
    for name, d in erk_densities(params, density).items():
        p = params[name]
        keep = torch.zeros(p.numel(), dtype=torch.bool)
        k = min(max(int(round(d * p.numel())), 1), p.numel())
        keep[torch.topk(torch.rand(p.numel(), generator=gen), k, sorted=False).indices] = True
        mask[name] = keep.view(p.shape).to(p.device)
    return mask


def death_rate_at(death_rate: float, step: int, total_steps: int, floor: float = 0.0) -> float:
    """Cosine-decayed death rate after ``step`` of ``total_steps`` optimizer steps:
    ``floor + (death_rate − floor) · (1 + cos(π·step/T)) / 2`` (torch's CosineAnnealingLR with
    ``eta_min=floor``, as the reference's ``CosineDecay``)."""
    floor = min(floor, death_rate)
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return floor + (death_rate - floor) * (1.0 + math.cos(math.pi * t)) / 2.0


class DynamicSparsity(Callback):
    """Sparse training with periodic prune-and-regrow, exact per-layer counts, and resume.

    Weights outside the mask are held at exactly zero after every optimizer step. After
    optimizer step ``s`` (0-based) with ``(s + 1) % update_interval == 0`` every sparse layer
    prunes ``ceil(rate · active)`` of its active weights with the smallest magnitude and
    regrows as many among its inactive ones (the just-pruned included, as in RigL) by the
    largest ``|grad|`` — the dense gradient of that step, which :func:`fit` leaves in
    ``.grad`` until the next backward — or at random (seeded per update and layer).
    ``rate`` is :func:`death_rate_at` (``decay="cosine"``) or ``death_rate`` (``"constant"``).
    The mask and the update count are saved with fit's resume state.
    """

    resumable = True

    def __init__(self, params: Mapping[str, nn.Parameter], mask: Mask, *, total_steps: int,
                 death_rate: float = 0.5, update_interval: int = 100, regrow: str = "gradient",
                 decay: str = "cosine", death_rate_floor: float = 0.005, seed: int = 0) -> None:
        check_probability(death_rate, "death rate")
        check_probability(death_rate_floor, "death rate floor")
        check_positive_int(update_interval, "update interval")
        check_positive_int(total_steps, "total steps")
        check_choice(regrow, REGROW, "regrow")
        check_choice(decay, DECAYS, "death-rate decay")
        if set(mask) - set(params):
            raise UserError(f"mask names tensors the model lacks: {sorted(set(mask) - set(params))}")
        self.params = {n: params[n] for n in mask}
        self.inactive = {n: ~m.to(self.params[n].device, torch.bool) for n, m in mask.items()}
        self.total_steps, self.death_rate, self.floor = int(total_steps), death_rate, death_rate_floor
        self.update_interval, self.regrow, self.decay, self.seed = int(update_interval), regrow, decay, int(seed)
        self.updates = 0  # prune-and-regrow updates done (each costs one dense gradient with RigL)
        self.optimizer: torch.optim.Optimizer | None = None
        self._applied = False

    @property
    def mask(self) -> Mask:
        """The active weights, ``True`` = kept."""
        return {n: ~m for n, m in self.inactive.items()}

    def rate(self, steps_done: int) -> float:
        """The death rate of an update after ``steps_done`` optimizer steps."""
        if self.decay == "constant":
            return self.death_rate
        return death_rate_at(self.death_rate, steps_done, self.total_steps, self.floor)

    @torch.no_grad()
    def _zero(self) -> None:
        for n, off in self.inactive.items():
            self.params[n].masked_fill_(off, 0.0)

    def on_train_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.inactive = {n: off.to(self.params[n].device) for n, off in self.inactive.items()}
        # Zeroing waits for the first batch: on resume fit calls load_state_dict after this,
        # and zeroing by the initial mask here would destroy the restored weights.
        self.optimizer, self._applied = optimizer, False

    def on_batch_start(self, model: nn.Module, step: int) -> None:
        if not self._applied:
            self._zero()
            self._applied = True

    def on_after_step(self, model: nn.Module, step: int) -> None:
        self._zero()
        done = step + 1
        if done % self.update_interval == 0 and done < self.total_steps:
            rate = self.rate(done)
            counts = {n: math.ceil(rate * int((~off).sum())) for n, off in self.inactive.items()}
            self.prune_and_regrow(counts, key=done)

    @torch.no_grad()
    def prune_and_regrow(self, counts: Mapping[str, int], *, key: int) -> dict[str, int]:
        """Prune ``counts[name]`` active weights of each layer by smallest magnitude and regrow
        as many; clear both sets' optimizer state. Layers with every weight active are left
        alone. ``key`` seeds random regrowth. Returns the counts moved."""
        moved = {}
        for li, (n, off) in enumerate(self.inactive.items()):
            p, active = self.params[n], ~off
            k = min(int(counts.get(n, 0)), int(active.sum()))
            if k <= 0 or bool(active.all()):
                continue
            flat_active = active.reshape(-1)
            mag = p.detach().abs().reshape(-1).float().masked_fill(~flat_active, math.inf)
            pruned = torch.topk(mag, k, largest=False, sorted=False).indices
            candidates = ~flat_active
            candidates[pruned] = True
            if self.regrow == "gradient":
                g = p.grad
                score = g.detach().abs().reshape(-1).float() if g is not None else torch.zeros_like(mag)
            else:
                gen = torch.Generator().manual_seed(derive_seed(self.seed, _REGROW_STREAM, key, li))
                score = torch.rand(p.numel(), generator=gen).to(p.device)
            grown = torch.topk(score.masked_fill(~candidates, -math.inf), k, sorted=False).indices
            new_active = flat_active.clone()
            new_active[pruned] = False
            new_active[grown] = True
            changed = torch.zeros_like(flat_active)
            changed[pruned] = True
            changed[grown] = True
            changed = changed.view(p.shape)
            off.copy_(~new_active.view(p.shape))
            p.masked_fill_(changed | off, 0.0)  # regrown weights start at exactly zero
            self._clear_state(p, changed)
            moved[n] = k
        self.updates += 1
        return moved

    def _clear_state(self, p: torch.Tensor, changed: torch.Tensor) -> None:
        """Zero every per-weight optimizer buffer of ``p`` (momentum, Adam moments, ...) at
        ``changed``: a regrown weight starts fresh, as if newly initialised."""
        state = self.optimizer.state.get(p, {}) if self.optimizer is not None else {}
        for v in state.values():
            if isinstance(v, torch.Tensor) and v.shape == p.shape:
                v.masked_fill_(changed, 0)

    def global_prune_counts(self, fraction: float) -> dict[str, int]:
        """How many active weights of each sparse layer a GLOBAL magnitude prune of ``fraction``
        of all active weights (dense layers excluded) removes."""
        names = [n for n, off in self.inactive.items() if bool(off.any())]
        if not names:
            return {}
        mags = torch.cat([self.params[n].detach().abs().reshape(-1).float()
                          .masked_fill(self.inactive[n].reshape(-1), math.inf).cpu() for n in names])
        active = int(torch.isfinite(mags).sum())
        k = min(math.ceil(fraction * active), active)
        layer = torch.repeat_interleave(torch.arange(len(names)),
                                        torch.tensor([self.params[n].numel() for n in names]))
        idx = torch.topk(mags, k, largest=False, sorted=False).indices
        per = torch.bincount(layer[idx], minlength=len(names))
        return {n: int(c) for n, c in zip(names, per)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{f"mask.{n}": (~off).cpu() for n, off in self.inactive.items()},
                "updates": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for n, off in self.inactive.items():
            if f"mask.{n}" not in state:
                raise UserError(f"the resume state has no mask for {n!r}; delete it to start over")
            off.copy_(~state[f"mask.{n}"].to(off.device, torch.bool))
        self.updates = int(state.get("updates", torch.tensor(0)))
        self._applied = False


def sparse_training_flops(model: nn.Module, mask: Mask, data: DataSplits, batch_size: int,
                          examples: float, *, updates: int = 0, regrow: str = "gradient",
                          objective: Objective = cross_entropy) -> float:
    """FLOPs of sparse training: the step counted at the masks' densities
    (:func:`~evo_ensembles.flops.step_flops`), per example × ``examples``, plus for each of the
    ``updates`` prune-and-regrow updates with gradient regrowth the RigL extra
    (:func:`~evo_ensembles.flops.rigl_update_flops`: one dense gradient of that step's batch).

    Convention: both steps are measured on one real batch and reduced to per-example FLOPs;
    an update's extra is that per-example difference × ``batch_size`` (the examples whose
    dense gradient it takes). Random regrowth needs no gradient and adds nothing.
    """
    x, y = sample_batch(data, batch_size, next(model.parameters()).device)
    sparse = per_example(step_flops(model, x, y, objective=objective, densities=mask_densities(mask)), len(x))
    total = sparse * examples
    if regrow == "gradient" and updates:
        dense = per_example(step_flops(model, x, y, objective=objective), len(x))
        total += updates * rigl_update_flops(dense, sparse) * batch_size
    return total


__all__ = ["DECAYS", "REGROW", "DynamicSparsity", "death_rate_at", "erk_densities", "erk_mask",
           "sparse_training_flops"]
