"""The small-budget baselines of Table 5.1: Independent, Dropout, Bagging (SPEC §3).

Each trains through :func:`evo_ensembles.train.fit` and reports its cost in epochs of one
full model over the full training split, so methods compare at equal budgets.

Example:
    >>> from evo_ensembles import load_dataset, TrainConfig
    >>> data = load_dataset("fashion-mnist", subset=512)                      # doctest: +SKIP
    >>> res = bagging("lenet-5", data, TrainConfig(epochs=1), members=2)     # doctest: +SKIP
    >>> len(res.ensemble), res.epochs                                        # doctest: +SKIP
    (2, 1.8)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..checks import check_fraction
from ..data import DataSplits
from ..ensemble import Ensemble
from ..models import build_model
from ..subnet import derive_seed
from ..train import TrainConfig, fit


@dataclass
class BaselineResult:
    """An ensemble (one member for single models) and what it cost to train."""

    ensemble: Ensemble
    epochs: float  # full-model epochs over the full training split
    seconds: float


def _train_one(model_name: str, data: DataSplits, cfg: TrainConfig, *, dropout: float = 0.0,
               train=None, device="auto", progress=False, desc="train"):
    model = build_model(model_name, data.input_shape, data.num_classes, dropout=dropout,
                        seed=cfg.seed)
    res = fit(model, data.train if train is None else train, cfg, augment=data.augment,
              device=device, progress=progress, desc=desc)
    return model, res


def independent(model_name: str, data: DataSplits, cfg: TrainConfig, *, device="auto",
                progress=False) -> BaselineResult:
    """One model trained for ``cfg.epochs``."""
    model, res = _train_one(model_name, data, cfg, device=device, progress=progress,
                            desc="independent")
    return BaselineResult(Ensemble([model]), float(cfg.epochs), res.seconds)


def dropout_model(model_name: str, data: DataSplits, cfg: TrainConfig, *, p: float = 0.5,
                  device="auto", progress=False) -> BaselineResult:
    """The same model with dropout ``p`` after every hidden layer (evaluated without dropout)."""
    model, res = _train_one(model_name, data, cfg, dropout=p, device=device, progress=progress,
                            desc="dropout")
    return BaselineResult(Ensemble([model]), float(cfg.epochs), res.seconds)


def bagging(model_name: str, data: DataSplits, cfg: TrainConfig, *, members: int = 8,
            fraction: float = 0.9, device="auto", progress=False) -> BaselineResult:
    """``members`` models, each trained ``cfg.epochs`` on its own random ``fraction`` of train
    (drawn without replacement, seeded per member)."""
    check_fraction(fraction, "bagging fraction")
    n = len(data.train)
    ens, seconds = Ensemble(), 0.0
    for i in range(members):
        seed = derive_seed(cfg.seed, 3, i) % (2**31)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[: int(round(fraction * n))]
        model, res = _train_one(model_name, data, replace(cfg, seed=seed), train=data.train.subset(idx),
                                device=device, progress=progress, desc=f"bag {i + 1}/{members}")
        ens.add(model, {"seed": seed, "fraction": fraction})
        seconds += res.seconds
    return BaselineResult(ens, members * cfg.epochs * fraction, seconds)
