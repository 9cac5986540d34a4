"""The one training loop: parents, children and baselines all train through :func:`fit`.

Per-step work beyond a bare PyTorch loop is kept to callbacks (usually one or none), a
scheduler step and a detached loss sum, so the loop runs at the speed of the bare loop
(benchmarks/perf_training.py measures the ratio).

Resuming: with ``checkpoint_dir`` the loop saves model + optimizer + progress at the end of
every epoch; calling :func:`fit` again with the same config continues after the last
finished epoch and produces the same weights as an uninterrupted run (data order,
augmentation and dropout depend only on (seed, epoch)).

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles.data import ArrayData
    >>> data = ArrayData(torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,)))
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    >>> result = fit(net, data, TrainConfig(epochs=2, batch_size=16), progress=False)
    >>> len(result.history)
    2
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import ArrayData, Augment
from ..data.loaders import TrainData, data_size, epoch_batches
from ..devices import resolve_device
from ..errors import UserError
from .checkpoint import clear_train_state, load_train_state, save_train_state
from .config import TrainConfig
from .optim import build_optimizer, build_scheduler

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""``objective(model, x, y) -> (loss, logits, targets)``: the loss to minimise on a batch and
the (N, C) logits and (N,) targets its training accuracy is counted on. Multi-member models
(TreeNet, BatchEnsemble, MIMO) give their own; the default is :func:`cross_entropy`."""


def cross_entropy(model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The default objective: cross-entropy of ``model(x)``."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits, y


class Callback:
    """Hooks into :func:`fit`; override what you need (all are no-ops here)."""

    def on_train_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None: ...

    def on_batch_start(self, model: nn.Module, step: int) -> None: ...

    def on_after_step(self, model: nn.Module, step: int) -> None: ...

    def on_epoch_end(self, model: nn.Module, epoch: int, stats: dict) -> None: ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to checkpoint with the training state (for callbacks that keep state)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`'s tensors on resume (called after ``on_train_start``)."""


@dataclass
class TrainResult:
    """What :func:`fit` measured: one dict per epoch, and totals over the epochs run now."""

    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    resumed_from_epoch: int = 0

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: TrainData, device: torch.device, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (ArrayData, a Dataset or a DataLoader) in eval mode
    (of the members' averaged probabilities for a model returning (M, B, C) logits)."""
    was = model.training
    model.eval()
    correct = seen = 0
    for x, y in epoch_batches(data, batch_size, device=device):
        out = model(x)
        if out.dim() == 3:  # (M, B, C) members of one network: their averaged probabilities
            out = torch.softmax(out.float(), -1).mean(0)
        correct += int((out.argmax(1) == y).sum())
        seen += len(y)
    model.train(was)
    return correct / seen if seen else float("nan")


def fit(
    model: nn.Module,
    train: TrainData,
    cfg: TrainConfig,
    *,
    val: TrainData | None = None,
    augment: Augment | None = None,
    device: str | torch.device = "auto",
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    desc: str = "train",
    objective: Objective = cross_entropy,
) -> TrainResult:
    """Train ``model`` in place on ``train`` with cross-entropy; return per-epoch stats.

    ``train`` (and ``val``) is an :class:`ArrayData` (seeded order and augmentation, exact
    resume), a ``Dataset`` (seeded order; its own transforms) or a ``DataLoader`` (the user's
    order: a resumed run is not bit-identical); see :mod:`evo_ensembles.data.loaders`.
    ``objective`` gives the loss of a batch (default: cross-entropy of ``model(x)``).
    """
    if data_size(train) == 0:
        raise UserError("cannot train on an empty data set")
    if augment is not None and not augment.is_identity and not isinstance(train, ArrayData):
        raise UserError("augment applies to ArrayData; give your Dataset its own transforms instead")
    device = resolve_device(device)
    model.to(device)
    loader = epoch_batches(train, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed,
                           device=device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(loader))
    result = TrainResult()
    start_epoch, info = 0, None
    if checkpoint_dir is not None:
        info = load_train_state(checkpoint_dir, model, optimizer)
        if info is not None:
            if info.get("config") != cfg.to_dict():
                raise UserError(
                    f"{checkpoint_dir} holds the resume state of a different training run; "
                    "use a new output directory or delete it"
                )
            start_epoch = int(info["epoch"])
            result.history = list(info.get("history", []))
            result.resumed_from_epoch = start_epoch
            _fast_forward(scheduler, start_epoch * len(loader))
    callback_state = info.get("callback_state", {}) if info else {}
    for i, cb in enumerate(callbacks):
        cb.on_train_start(model, optimizer)
        if str(i) in callback_state:
            cb.load_state_dict(callback_state[str(i)])

    step = start_epoch * len(loader)
    for epoch in range(start_epoch, cfg.epochs):
        loader.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        t0 = time.perf_counter()
        # Dropout draws from the global generator: seed it per epoch inside a fork so runs
        # are reproducible and resumable without touching the caller's random state.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{cfg.epochs}", disable=not progress,
                       leave=False, mininterval=0.5)
            for x, y in bar:
                for cb in callbacks:
                    cb.on_batch_start(model, step)
                loss, logits, targets = objective(model, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                for cb in callbacks:
                    cb.on_after_step(model, step)
                step += 1
                loss_sum += loss.detach() * len(y)
                # per input: several members' predictions of one input count as one input
                correct += (logits.detach().argmax(1) == targets).sum() * (len(y) / len(targets))
            bar.close()
        seconds = time.perf_counter() - t0
        n = loader.num_samples
        stats = {
            "epoch": epoch + 1,
            "loss": float(loss_sum) / n,
            "train_accuracy": float(correct) / n,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "samples_per_second": n / seconds,
        }
        if val is not None and data_size(val) != 0:
            stats["val_accuracy"] = evaluate_accuracy(model, val, device)
        for cb in callbacks:
            cb.on_epoch_end(model, epoch, stats)
        result.history.append(stats)
        result.seconds += seconds
        result.samples += n
        if progress:
            extra = f" val_acc {stats['val_accuracy']:.4f}" if "val_accuracy" in stats else ""
            tqdm.write(f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {stats['loss']:.4f} "
                       f"acc {stats['train_accuracy']:.4f}{extra} ({seconds:.1f}s)")
        if checkpoint_dir is not None:
            cb_tensors = {f"callback.{i}.{k}": v for i, cb in enumerate(callbacks)
                          for k, v in cb.state_dict().items()}
            save_train_state(checkpoint_dir, model, optimizer,
                             {"epoch": epoch + 1, "config": cfg.to_dict(), "history": result.history}, cb_tensors)
    if checkpoint_dir is not None:
        clear_train_state(checkpoint_dir)
    return result


def _fast_forward(scheduler, steps: int) -> None:
    if scheduler is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(steps):
            scheduler.step()
