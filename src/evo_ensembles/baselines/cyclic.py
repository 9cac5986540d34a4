"""Snapshot Ensembles and Fast Geometric Ensembling: one training run, members collected at
the minima of a cyclic learning rate.

- **Snapshot** (Huang et al. 2017): cosine annealing with warm restarts over M cycles of
  the budget, the rate set per iteration, α(t) = α0/2 · (cos(π · (t mod T/M) / (T/M)) + 1)
  (torch's ``CosineAnnealingWarmRestarts``); a member is saved at the end of each cycle,
  where the rate is lowest.
- **FGE** (Garipov et al. 2018): pre-train for about 80% of the budget with the model's
  usual schedule, then a cyclic rate with cycle length c epochs, linear from α1 at each cycle
  boundary to α2 at mid-cycle and back, per iteration; a member is collected at each
  mid-cycle minimum. The FGE README calls the two rates the other way round from its code;
  this follows the code (α1, the high rate, at the boundaries).

Both run through :func:`evo_ensembles.train.fit` with the schedule in the
:class:`TrainConfig` and a :class:`CollectAtSteps` callback, so they resume like any run.

Examples:
    >>> import torch
    >>> from evo_ensembles.data import ArrayData
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> keep = CollectAtSteps([1, 3])
    >>> _ = fit(net, ArrayData(torch.randn(32, 1, 4, 4), torch.randint(0, 3, (32,))),
    ...         TrainConfig(epochs=2, batch_size=16), callbacks=[keep], progress=False)
    >>> sorted(keep.states), len(keep.lrs)
    ([1, 3], 4)
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from ..checks import check_positive_int
from ..data import DataSplits
from ..data.loaders import steps_per_epoch
from ..ensemble import Ensemble
from ..errors import UserError
from ..models import ModelSource, make_model
from ..train import Callback, TrainConfig, cycle_minima, fit
from .common import BaselineResult, fit_stage, stage_dir, training_flops


class CollectAtSteps(Callback):
    """Keeps a CPU copy of the model's weights after each step in ``steps`` (0-based global
    steps) and the learning rate of every step; both survive a resume."""

    def __init__(self, steps) -> None:
        self.steps = set(int(s) for s in steps)
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        self.lrs: list[float] = []
        self._optimizer: torch.optim.Optimizer | None = None

    def on_train_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._optimizer = optimizer

    def on_after_step(self, model: nn.Module, step: int) -> None:
        if step in self.steps:
            self.states[step] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def on_batch_start(self, model: nn.Module, step: int) -> None:
        # read before the step: after it the scheduler has already moved on
        assert self._optimizer is not None  # fit calls on_train_start first
        self.lrs.append(float(self._optimizer.param_groups[0]["lr"]))

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"lrs": torch.tensor(self.lrs, dtype=torch.float64)}
        for step, state in self.states.items():
            out.update({f"{step}/{k}": v for k, v in state.items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.lrs = state["lrs"].tolist() if "lrs" in state else []
        for key, v in state.items():
            if "/" in key:
                step, name = key.split("/", 1)
                self.states.setdefault(int(step), {})[name] = v


def _members_from(model: nn.Module, keep: CollectAtSteps) -> list[nn.Module]:
    members = []
    for step in sorted(keep.states):
        m = copy.deepcopy(model)
        m.load_state_dict(keep.states[step])
        members.append(m)
    return members


def snapshot(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 5, device="auto",
             progress=False, workdir=None) -> BaselineResult:
    """Snapshot Ensemble of ``members`` cosine cycles of ``cfg.epochs / members`` epochs each,
    from ``cfg.lr`` down to ``cfg.min_lr``; ``cfg.epochs`` must be a multiple of ``members``."""
    check_positive_int(members, "members")
    if cfg.epochs % members:
        raise UserError(f"Snapshot splits the budget into equal cycles: epochs ({cfg.epochs}) must be a "
                        f"multiple of members ({members})")
    run = replace(cfg, schedule="cosine-restarts", cycle_epochs=cfg.epochs // members)
    spe = steps_per_epoch(data.train, cfg.batch_size)
    keep = CollectAtSteps(cycle_minima(run.schedule, run.cycle_epochs, spe, run.epochs * spe))
    model = make_model(model, data.input_shape, data.num_classes, seed=cfg.seed)
    res = fit(model, data.train, run, val=data.val, augment=data.augment, device=device, callbacks=[keep],
              checkpoint_dir=stage_dir(workdir, "model"), progress=progress, desc="snapshot")
    flops = training_flops(model, data, cfg.batch_size, cfg.epochs * len(data.train))
    info = [{"step": s, "epoch": (s + 1) / spe, "lr": keep.lrs[s] if s < len(keep.lrs) else None}
            for s in sorted(keep.states)]
    return BaselineResult(Ensemble(_members_from(model, keep)), float(cfg.epochs), res.seconds, flops,
                          members=info, history=res.history, trace={"lr": keep.lrs})


def fge(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int | None = None, cycle_epochs: int = 2,
        pretrain_fraction: float = 0.8, lr_high: float | None = None, lr_low: float | None = None,
        device="auto", progress=False, workdir=None) -> BaselineResult:
    """Fast Geometric Ensembling within ``cfg.epochs``.

    Pre-training takes ``cfg``'s schedule for the epochs left after the cycles; the cyclic
    phase then runs ``members`` cycles of ``cycle_epochs`` (even) from ``lr_high`` (α1,
    default ``cfg.lr``) at the cycle boundaries to ``lr_low`` (α2, default α1 / 100) at
    mid-cycle, one member per cycle. ``members`` defaults to as many cycles as fit in
    ``(1 − pretrain_fraction)`` of the budget (at least one).
    """
    check_positive_int(cycle_epochs, "cycle_epochs")
    if cycle_epochs % 2:
        raise UserError(f"FGE's cycle length must be even (its minimum falls at mid-cycle), got {cycle_epochs}")
    if members is None:
        members = max(1, int(round((1 - pretrain_fraction) * cfg.epochs)) // cycle_epochs)
    check_positive_int(members, "members")
    pre_epochs = cfg.epochs - members * cycle_epochs
    if pre_epochs < 1:
        raise UserError(f"FGE needs pre-training: {members} cycles of {cycle_epochs} epochs leave "
                        f"{pre_epochs} of the {cfg.epochs}-epoch budget")
    alpha1 = cfg.lr if lr_high is None else lr_high
    alpha2 = alpha1 / 100 if lr_low is None else lr_low
    model = make_model(model, data.input_shape, data.num_classes, seed=cfg.seed)
    pre = fit_stage(model, data.train, replace(cfg, epochs=pre_epochs), val=data.val, augment=data.augment,
                    device=device, workdir=workdir, stage="pretrain", progress=progress, desc="fge pre-train")
    cyc = replace(cfg, epochs=members * cycle_epochs, schedule="cyclic", cycle_epochs=cycle_epochs,
                  lr=alpha1, min_lr=alpha2, seed=cfg.seed + 1)
    spe = steps_per_epoch(data.train, cfg.batch_size)
    keep = CollectAtSteps(cycle_minima("cyclic", cycle_epochs, spe, cyc.epochs * spe))
    res = fit(model, data.train, cyc, val=data.val, augment=data.augment, device=device, callbacks=[keep],
              checkpoint_dir=stage_dir(workdir, "cycles"), progress=progress, desc="fge cycles")
    flops = training_flops(model, data, cfg.batch_size, cfg.epochs * len(data.train))
    info = [{"step": s, "epoch": pre_epochs + (s + 1) / spe, "lr": keep.lrs[s] if s < len(keep.lrs) else None}
            for s in sorted(keep.states)]
    return BaselineResult(Ensemble(_members_from(model, keep)), float(cfg.epochs), pre.seconds + res.seconds,
                          flops, members=info, history=pre.history + res.history, trace={"lr": keep.lrs})



def check_snapshot(cfg) -> None:
    """Snapshot's cycles split the budget evenly."""
    if cfg.epochs % cfg.members:
        raise UserError(f"--epochs ({cfg.epochs}) must be a multiple of --members ({cfg.members}) for snapshot")


def check_fge(cfg) -> None:
    """FGE's cycles are triangles: an even number of epochs each."""
    if cfg.cycle_epochs % 2:
        raise UserError(f"--cycle-epochs must be even for fge, got {cfg.cycle_epochs}")


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "snapshot", "title": "Snapshot Ensemble", "function": "snapshot",
     "summary": "M cosine cycles of epochs / M (one run)", "members": 4, "check": "check_snapshot"},
    {"name": "fge", "title": "Fast Geometric Ensembling", "function": "fge",
     "summary": "pre-training, then M cyclic-lr cycles of --cycle-epochs", "members": 2,
     "options": {"cycle_epochs": "cycle_epochs", "pretrain_fraction": "pretrain_fraction",
                 "lr_low": "fge_lr_low"}, "check": "check_fge"},
]


__all__ = ["CollectAtSteps", "fge", "snapshot"]
