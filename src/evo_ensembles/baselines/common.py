"""What every peer method shares: its result, the member interface of one-network-many-outputs
models, their training objective, and the training-cost count.

Every peer is a function ``method(model, data, cfg, *, members=..., ..., device="auto",
progress=False, workdir=None) -> BaselineResult``: ``model`` is a registry name, your own
``nn.Module`` (a template, copied and initialised afresh per member; never modified) or a
zero-argument function returning one (:mod:`evo_ensembles.models.source`); ``cfg`` is the :class:`TrainConfig` of the
budget (its ``epochs`` are one model's full training), ``workdir`` (optional) holds resume
states so an interrupted run continues where it stopped.

Example (a model whose forward returns (M, B, C) logits):
    >>> import torch, torch.nn as nn
    >>> class TwoHeads(nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)
    ...     def forward(self, x):
    ...         return torch.stack([self.a(x), self.b(x)])
    >>> ens = MultiOutputEnsemble(TwoHeads(), members=2)
    >>> len(ens), ens.member_probs(torch.randn(5, 4)).shape
    (2, torch.Size([2, 5, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSplits
from ..devices import resolve_device
from ..ensemble import BaseEnsemble
from ..flops import TrainingCost, mask_densities, per_example, step_flops
from ..models import ModelSource, make_model
from ..train import (
    TrainConfig,
    TrainResult,
    fit,
    load_state_into,
    load_tensors,
    read_meta,
    save_model,
)
from ..train.loop import Objective, cross_entropy


@dataclass
class BaselineResult:
    """An ensemble (one member for single models), what it cost to train, and per-member notes.

    ``epochs``: epochs run, summed over separately trained models (a 4-model deep ensemble of
    16 epochs each ran 64). ``training_flops``: FLOPs counted for all of its training
    (:mod:`evo_ensembles.flops`); ``None`` where it was not counted. ``trace``: per-step
    values worth checking, e.g. the learning rate of every step (``"lr"``).
    """

    ensemble: BaseEnsemble
    epochs: float
    seconds: float
    training_flops: float | None = None
    members: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    trace: dict[str, list[float]] = field(default_factory=dict)  # per-step traces, e.g. "lr"

    def cost(self, reference_flops: float, reference_epochs: float) -> TrainingCost:
        """This result's cost relative to one dense model's full training."""
        return TrainingCost(self.training_flops if self.training_flops is not None else float("nan"),
                            reference_flops, self.epochs, reference_epochs)


class MultiOutputEnsemble(BaseEnsemble):
    """Members of one network whose eval forward returns (M, B, C) logits (TreeNet,
    BatchEnsemble, MIMO): the member interface over it."""

    def __init__(self, module: nn.Module, *, members: int | None = None, combine: str = "mean") -> None:
        super().__init__(combine=combine)
        self.module = module
        members = getattr(module, "members", None) if members is None else members
        if not isinstance(members, int) or members < 1:
            raise TypeError("give members= or a module with an int .members attribute")
        self.members = members

    def __len__(self) -> int:
        return self.members

    def _voting_modules(self) -> nn.Module:
        return self.module

    @torch.no_grad()
    def _own_member_logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        device = next(self.module.parameters()).device
        was = self.module.training
        self.module.eval()
        try:
            outs = [self.module(x[i:i + batch_size].to(device)).float().cpu()
                    for i in range(0, len(x), batch_size)]
        finally:
            self.module.train(was)
        return torch.cat(outs, dim=1) if outs else torch.empty(len(self), 0)


class MemberView(nn.Module):
    """Member ``index`` of a network returning (M, B, C) logits, as a (B, C) module.

    Gradients flow through the shared network (saliency, feature visualisation).
    """

    def __init__(self, module: nn.Module, index: int) -> None:
        super().__init__()
        self.module, self.index = module, int(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[self.index]


def members_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """Objective of a model returning (M, B, C) logits on one batch: the sum over members of
    each member's mean cross-entropy (TreeNet's joint loss)."""
    logits = model(x)
    m, b, c = logits.shape
    loss = F.cross_entropy(logits.reshape(m * b, c), y.repeat(m), reduction="sum") / b
    return loss, logits.reshape(m * b, c), y.repeat(m)


def sample_batch(data: DataSplits, batch_size: int, device: torch.device | str = "cpu"):
    """The first ``batch_size`` training examples (a real batch to count a step on)."""
    n = min(batch_size, len(data.train))
    return data.train.x[:n].to(device), data.train.y[:n].to(device)


def training_flops(model: nn.Module, data: DataSplits, batch_size: int, examples: float, *,
                   objective: Objective = cross_entropy, densities: dict[str, float] | None = None) -> float:
    """FLOPs of training ``model`` with ``objective`` on ``examples`` training examples, from
    one real step on a batch of ``batch_size``."""
    device = next(model.parameters()).device
    x, y = sample_batch(data, batch_size, device)
    return per_example(step_flops(model, x, y, objective=objective, densities=densities), len(x)) * examples


def masked_training_flops(model: nn.Module, mask: dict[str, torch.Tensor], data: DataSplits, batch_size: int,
                          examples: float, *, extra_density: float = 0.0) -> float:
    """:func:`training_flops` of a pruned model, each masked layer at its mask's density.

    ``extra_density``: the expected share of the *pruned* weights that is active anyway
    (stochastic annealing: each forward pass keeps pruned weight w with probability P(w)).
    """
    dens = {name: d + (1.0 - d) * extra_density for name, d in mask_densities(mask).items()}
    return training_flops(model, data, batch_size, examples, densities=dens)


def reference_flops(model: ModelSource, data: DataSplits, epochs: float, batch_size: int = 128) -> float:
    """FLOPs of one dense ``model`` trained ``epochs`` epochs on the full training split."""
    model = make_model(model, data.input_shape, data.num_classes, seed=0)
    return training_flops(model, data, batch_size, epochs * len(data.train))


def stage_dir(workdir: str | Path | None, name: str) -> Path | None:
    """Where one training stage of a method keeps its resume state (None: not resumable)."""
    return None if workdir is None else Path(workdir) / name


def fit_stage(model: nn.Module, train, cfg: TrainConfig, *, workdir: str | Path | None, stage: str,
              device: str | torch.device = "auto", **fit_kwargs: Any) -> TrainResult:
    """:func:`fit` one stage of a multi-stage method (a member, a mothernet, a pre-training)
    so that a rerun skips it once finished: its weights and history are kept in
    ``workdir/<stage>.safetensors`` with the stage's settings, an unfinished stage resumes
    from ``workdir/<stage>/``. Without ``workdir`` it is plain :func:`fit`.

    Only for stages whose outcome is the model's weights alone (no callback state).
    """
    if workdir is None:
        return fit(model, train, cfg, device=device, **fit_kwargs)
    done = Path(workdir) / f"{stage}.safetensors"
    key = {"stage": stage, "train": cfg.to_dict()}
    if done.is_file() and read_meta(done).get("run_key") == key:
        load_state_into(model, load_tensors(done), str(done))
        model.to(resolve_device(device))
        return TrainResult(history=list(read_meta(done).get("history", [])), resumed_from_epoch=cfg.epochs)
    res = fit(model, train, cfg, device=device, checkpoint_dir=Path(workdir) / stage, **fit_kwargs)
    save_model(done, model, {"run_key": key, "history": res.history})
    return res


__all__ = ["BaselineResult", "MemberView", "MultiOutputEnsemble", "fit_stage", "masked_training_flops",
           "members_cross_entropy", "reference_flops", "sample_batch", "stage_dir", "training_flops"]
