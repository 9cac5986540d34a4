"""Optimizer and learning-rate schedule for a :class:`TrainConfig` (torch's own classes)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD (Nesterov) over ``model``'s trainable parameters.

    Build it *after* the model it updates is copied/moved: an optimizer holds references to
    the exact parameter tensors (a defect seen in peers is building it before ``deepcopy``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step schedule, or ``None`` for a constant rate."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "constant":
        return None
    if cfg.schedule == "one-cycle":
        initial = cfg.lr / cfg.div_factor
        # OneCycleLR divides by (pct_start * total - 1): a warm-up of exactly one step would
        # divide by zero, so it is shortened below one step (then the cycle starts at its peak).
        pct = cfg.pct_start * 0.999 if abs(cfg.pct_start * total - 1.0) < 1e-9 else cfg.pct_start
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=cfg.lr,
            total_steps=total,
            pct_start=pct,
            anneal_strategy="cos",
            three_phase=False,
            div_factor=cfg.div_factor,
            final_div_factor=max(initial / cfg.final_lr, 1.0),
            cycle_momentum=True,
            base_momentum=0.85,
            max_momentum=0.95,
        )

    if cfg.schedule == "cosine-restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=cfg.cycle_epochs * steps_per_epoch, eta_min=cfg.min_lr)
    if cfg.schedule == "cyclic":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: cyclic_factor(s, cfg.cycle_epochs * steps_per_epoch, cfg.min_lr / cfg.lr))

    def step_decay(step: int) -> float:
        frac = step / total
        if frac < 0.5:
            return 1.0
        if frac < 0.9:
            return 1.0 - (1.0 - 0.01) * (frac - 0.5) / 0.4
        return 0.01

    return torch.optim.lr_scheduler.LambdaLR(optimizer, step_decay)


def cyclic_factor(step: int, cycle_steps: int, low: float) -> float:
    """FGE's cyclic rate as a fraction of α1: 1 at each cycle boundary, ``low`` (α2/α1) at
    mid-cycle, linear in between (t is the position in the cycle, as in the FGE code)."""
    t = (step % cycle_steps) / cycle_steps
    return 1.0 - 2.0 * t * (1.0 - low) if t < 0.5 else low + (2.0 * t - 1.0) * (1.0 - low)


def cycle_minima(schedule: str, cycle_epochs: int, steps_per_epoch: int, total_steps: int) -> list[int]:
    """The steps (0-based, the step just taken) at which a cyclic schedule's rate is lowest:
    the last step of each cosine cycle (Snapshot), the mid-point of each cyclic cycle (FGE)."""
    c = cycle_epochs * steps_per_epoch
    if schedule == "cosine-restarts":
        return [s for s in range(c - 1, total_steps, c)]
    if schedule == "cyclic":
        return [s for s in range(c // 2, total_steps, c)]
    raise ValueError(f"{schedule!r} is not a cyclic schedule")
