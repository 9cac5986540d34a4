"""FreeTickets (Liu et al. 2022, "Deep Ensembling with No Overhead for either Training or
Testing: The All-Round Blessings of Dynamic Sparsity"): ensembles of sparse networks found by
dynamic sparse training (:mod:`.dynamic_sparsity`).

- :func:`dst` (DST Ensemble): ``members`` sparse networks, each trained from scratch with
  prune-and-regrow for ``cfg.epochs`` (own seed, own ERK mask); cost ``members × cfg.epochs``.
- :func:`edst` (EDST Ensemble): ONE sparse run of ``cfg.epochs``. An exploration phase (the
  first ``explore_fraction`` of the epochs) at the high rate ``cfg.lr``, then ``members``
  refinement phases splitting the rest; phases 2..M start with a large prune-and-regrow of
  ``large_death_rate`` of the active weights that moves the network to a new basin. Each phase
  yields the member with the best accuracy on ``data.val`` among its epoch ends (its last
  epoch when there is no validation split).

EDST's learning rates follow the reference script (``main_EDST.py`` run with ``--nolrsche``,
as its README does): ``cfg.lr`` while exploring, then in each refinement phase ``cfg.lr/10``
for its first half and ``cfg.lr/100`` for the rest (0.1 → 0.01 → 0.001 there). TrainConfig
has no schedule of that shape, so EDST trains with ``schedule="constant"`` and
:class:`EDSTPhases` sets the rate at each batch (the reference assigns
``param_groups[0]["lr"]`` by hand the same way); ``cfg.schedule`` is not used. One optimizer
runs through all phases, as in the reference.

Deviations from the reference, each on purpose: the large prune of a refinement phase is
GLOBAL (one magnitude ranking over all sparse layers, as the paper describes; the reference
code calls its per-layer ``truncate_weights(large_death_rate)`` — ``large_scope="layer"``
gives that), and each layer regrows as many weights as it lost, so every layer keeps its
ERK count; every phase's best member is tracked from its own first epoch (the reference
does not reset its best accuracy after exploration, so its first member may never be
saved); the death rate of EDST is constant by default, matching the reference's README
command (``--decay-schedule constant``), while DST decays it by a cosine (the reference's
default, there computed and never applied). See :mod:`.dynamic_sparsity` for the rest.

Examples:
    >>> from evo_ensembles import load_dataset, TrainConfig
    >>> data = load_dataset("fashion-mnist", subset=512)                    # doctest: +SKIP
    >>> res = edst("lenet-5", data, TrainConfig(epochs=6), members=3)      # doctest: +SKIP
    >>> len(res.ensemble), res.epochs                                      # doctest: +SKIP
    (3, 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..checks import check_choice, check_fraction, check_positive_int, check_probability
from ..data import DataSplits
from ..data.loaders import steps_per_epoch
from ..devices import resolve_device
from ..ensemble import Ensemble
from ..errors import UserError
from ..models import ModelSource, make_model
from ..subnet import apply_mask, derive_seed, eligible_parameters, mask_density
from ..train import Callback, TrainConfig, fit, load_state_into
from .common import BaselineResult, stage_dir
from .dynamic_sparsity import DynamicSparsity, erk_mask, sparse_training_flops

_STREAM = 0xF7EE  # derive_seed(cfg.seed, _STREAM, i): run i's seed; (seed, _STREAM, 1 << 20): its mask
REFINE_LR_FACTORS = (0.1, 0.01)  # refinement phases: cfg.lr × these, for the 1st and 2nd half
LARGE_SCOPES = ("global", "layer")


def sparse_model(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, density: float,
                 device: str | torch.device = "auto", **dst: Any) -> tuple[nn.Module, DynamicSparsity]:
    """A fresh ``model`` (seeded by ``cfg.seed``) on ``device``, pruned to a random ERK
    mask of ``density`` (seeded from ``cfg.seed``), and its :class:`DynamicSparsity` for a
    training of ``cfg.epochs`` (``dst`` holds the callback's keywords)."""
    check_fraction(density, "density")
    model = make_model(model, data.input_shape, data.num_classes, seed=cfg.seed)
    model.to(resolve_device(device))
    params = eligible_parameters(model)
    mask = erk_mask(params, density, seed=derive_seed(cfg.seed, _STREAM, 1 << 20))
    apply_mask(params, mask)
    total = cfg.epochs * steps_per_epoch(data.train, cfg.batch_size)
    return model, DynamicSparsity(params, mask, total_steps=total, seed=cfg.seed, **dst)


def dst(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 3, density: float = 0.2,
        death_rate: float = 0.5, update_interval: int = 100, regrow: str = "gradient",
        device="auto", progress=False, workdir=None) -> BaselineResult:
    """DST Ensemble: ``members`` independent dynamic-sparse runs from scratch, each of
    ``cfg.epochs`` at ``density`` (ERK), with a cosine-decayed ``death_rate`` every
    ``update_interval`` steps and ``regrow`` ``"gradient"`` (RigL) or ``"random"`` (SET)."""
    check_positive_int(members, "members")
    ens, seconds, flops, notes, history = Ensemble(), 0.0, 0.0, [], []
    for i in range(members):
        run = replace(cfg, seed=derive_seed(cfg.seed, _STREAM, i) % (2**31))
        net, sparsity = sparse_model(model, data, run, density=density, device=device,
                                     death_rate=death_rate, update_interval=update_interval,
                                     regrow=regrow, decay="cosine")
        res = fit(net, data.train, run, augment=data.augment, device=device, progress=progress,
                  desc=f"DST {i + 1}/{members}", callbacks=[sparsity],
                  checkpoint_dir=stage_dir(workdir, f"dst_member_{i}"))
        flops += sparse_training_flops(net, sparsity.mask, data, run.batch_size, run.epochs * len(data.train),
                                       updates=sparsity.updates, regrow=regrow)
        note = {"seed": run.seed, "density": mask_density(sparsity.mask), "updates": sparsity.updates,
                "regrow": regrow}
        ens.add(net, note)
        notes.append(note)
        history += [{"member": i, **h} for h in res.history]
        seconds += res.seconds
    return BaselineResult(ens, float(members * cfg.epochs), seconds, flops, members=notes, history=history)


def edst_phases(epochs: int, members: int, explore_fraction: float) -> tuple[int, list[tuple[int, int]]]:
    """EDST's plan: exploration epochs and each refinement phase's ``[start, end)`` epochs
    (the remaining epochs split as evenly as possible, earlier phases taking the extra ones).

    Examples:
        >>> edst_phases(10, 3, 1 / 3)
        (3, [(3, 6), (6, 8), (8, 10)])
    """
    check_probability(explore_fraction, "explore fraction")
    explore = int(round(explore_fraction * epochs))
    rest = epochs - explore
    if rest < members:
        raise UserError(f"EDST needs at least one epoch per member after {explore} exploration epochs: "
                        f"{epochs} epochs for {members} members")
    phases, start = [], explore
    for i in range(members):
        n = rest // members + (1 if i < rest % members else 0)
        phases.append((start, start + n))
        start += n
    return explore, phases


class EDSTPhases(Callback):
    """EDST's phases on top of a :class:`DynamicSparsity`: the learning rate of each epoch, the
    large prune-and-regrow at the end of each refinement phase but the last (the start of the
    next), and each phase's best model on the validation accuracy fit reports.

    Keeps every phase's best state (on CPU) and accuracy; both are saved with fit's resume
    state, so an interrupted run yields the same members.
    """

    resumable = True

    def __init__(self, sparsity: DynamicSparsity, *, lr: float, explore_epochs: int,
                 phases: Sequence[tuple[int, int]], steps_per_epoch: int, large_death_rate: float = 0.8,
                 large_scope: str = "global") -> None:
        check_probability(large_death_rate, "large death rate")
        check_choice(large_scope, LARGE_SCOPES, "large-prune scope")
        self.sparsity, self.lr, self.explore = sparsity, lr, int(explore_epochs)
        self.phases, self.steps_per_epoch = [tuple(p) for p in phases], int(steps_per_epoch)
        self.large_death_rate, self.large_scope = large_death_rate, large_scope
        self.best: dict[int, dict[str, torch.Tensor]] = {}
        self.best_acc = [-math.inf] * len(self.phases)
        self.best_epoch = [-1] * len(self.phases)
        self.optimizer: torch.optim.Optimizer | None = None

    def phase_of(self, epoch: int) -> int | None:
        """The refinement phase of 0-based ``epoch`` (``None`` while exploring)."""
        return next((k for k, (a, b) in enumerate(self.phases) if a <= epoch < b), None)

    def lr_at(self, epoch: int) -> float:
        k = self.phase_of(epoch)
        if k is None:
            return self.lr
        a, b = self.phases[k]
        first_half = epoch - a < math.ceil((b - a) / 2)
        return self.lr * REFINE_LR_FACTORS[0 if first_half else 1]

    def on_train_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def on_batch_start(self, model: nn.Module, step: int) -> None:
        lr = self.lr_at(step // self.steps_per_epoch)
        assert self.optimizer is not None  # fit calls on_train_start first
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def on_epoch_end(self, model: nn.Module, epoch: int, stats: dict) -> None:
        k = self.phase_of(epoch)
        if k is None:
            return
        acc = stats.get("val_accuracy")
        # No validation split: the phase's last epoch wins; a NaN accuracy never displaces a model.
        if acc is None or k not in self.best or acc > self.best_acc[k]:
            self.best[k] = {n: v.detach().cpu().clone() for n, v in model.state_dict().items()}
            self.best_acc[k] = math.nan if acc is None else float(acc)
            self.best_epoch[k] = epoch
        if epoch == self.phases[k][1] - 1 and k + 1 < len(self.phases):
            sp = self.sparsity
            if self.large_scope == "global":
                counts = sp.global_prune_counts(self.large_death_rate)
            else:
                counts = {n: math.ceil(self.large_death_rate * int((~off).sum())) for n, off in sp.inactive.items()}
            sp.prune_and_regrow(counts, key=sp.total_steps + k + 1)  # keys past every periodic update

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"best_acc": torch.tensor(self.best_acc, dtype=torch.float64),
               "best_epoch": torch.tensor(self.best_epoch, dtype=torch.int64)}
        for k, state in self.best.items():
            out |= {f"member.{k}.{n}": v for n, v in state.items()}
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.best_acc = [float(a) for a in state["best_acc"]]
        self.best_epoch = [int(e) for e in state["best_epoch"]]
        self.best = {}
        for key, v in state.items():
            if key.startswith("member."):
                _, k, n = key.split(".", 2)
                self.best.setdefault(int(k), {})[n] = v


def edst(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 3, density: float = 0.1,
         death_rate: float = 0.5, update_interval: int = 100, explore_fraction: float = 1 / 3,
         large_death_rate: float = 0.8, regrow: str = "gradient", death_rate_decay: str = "constant",
         large_scope: str = "global", device="auto", progress=False, workdir=None) -> BaselineResult:
    """EDST Ensemble: one dynamic-sparse run of ``cfg.epochs`` yielding ``members`` sparse
    networks (see the module docstring for its phases and learning rates).

    ``explore_fraction``: share of the epochs spent exploring (the reference's 150 of 450);
    ``large_death_rate``: the share of active weights moved at the start of phases 2..M
    (``large_scope`` ``"global"`` or ``"layer"``); ``death_rate_decay``: ``"constant"`` or
    ``"cosine"`` over the whole run for the periodic updates.
    """
    check_positive_int(members, "members")
    explore, phases = edst_phases(cfg.epochs, members, explore_fraction)
    run = replace(cfg, schedule="constant")
    net, sparsity = sparse_model(model, data, run, density=density, device=device,
                                 death_rate=death_rate, update_interval=update_interval, regrow=regrow,
                                 decay=death_rate_decay)
    schedule = EDSTPhases(sparsity, lr=cfg.lr, explore_epochs=explore, phases=phases,
                          steps_per_epoch=steps_per_epoch(data.train, cfg.batch_size),
                          large_death_rate=large_death_rate, large_scope=large_scope)
    val = data.val if data.val is not None and len(data.val) else None
    res = fit(net, data.train, run, val=val, augment=data.augment, device=device, progress=progress,
              desc="EDST", callbacks=[sparsity, schedule], checkpoint_dir=stage_dir(workdir, "edst"))
    flops = sparse_training_flops(net, sparsity.mask, data, cfg.batch_size, cfg.epochs * len(data.train),
                                  updates=sparsity.updates, regrow=regrow)
    ens, notes = Ensemble(), []
    for k in range(members):
        member = make_model(model, data.input_shape, data.num_classes, seed=run.seed)
        load_state_into(member, schedule.best[k], f"EDST phase {k + 1}")
        acc = schedule.best_acc[k]
        note = {"phase": k, "epoch": schedule.best_epoch[k] + 1, "val_accuracy": None if math.isnan(acc) else acc,
                "density": mask_density(sparsity.mask), "seed": run.seed}
        ens.add(member.to(next(net.parameters()).device), note)
        notes.append(note)
    return BaselineResult(ens, float(cfg.epochs), res.seconds, flops, members=notes, history=res.history)



# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "dst", "title": "FreeTickets DST", "function": "dst",
     "summary": "M sparse runs of --member-epochs from scratch (ERK, prune-and-regrow)", "members": 3,
     "options": {"density": "density", "death_rate": "death_rate", "update_interval": "update_interval",
                 "regrow": "regrow"}, "budget": "split", "defaults": {"density": 0.2}},
    {"name": "edst", "title": "FreeTickets EDST", "function": "edst",
     "summary": "one sparse run: exploration, then M refinement phases", "members": 3,
     "options": {"density": "density", "death_rate": "death_rate", "update_interval": "update_interval",
                 "regrow": "regrow"}, "defaults": {"density": 0.1}},
]


__all__ = ["EDSTPhases", "LARGE_SCOPES", "REFINE_LR_FACTORS", "dst", "edst", "edst_phases", "sparse_model"]
