"""Peers made of separately trained dense models: Independent, Dropout (one model),
Bagging (SPEC §3, Table 5.1) and the dense Deep Ensemble (Lakshminarayanan et al. 2017).

Each trains through :func:`evo_ensembles.train.fit` and reports its cost in epochs (summed
over its models) and in FLOPs counted on a real step.

Examples:
    >>> from evo_ensembles import load_dataset, TrainConfig
    >>> data = load_dataset("fashion-mnist", subset=512)                      # doctest: +SKIP
    >>> res = bagging("lenet-5", data, TrainConfig(epochs=1), members=2)     # doctest: +SKIP
    >>> len(res.ensemble), res.epochs                                        # doctest: +SKIP
    (2, 1.8)
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..checks import check_fraction, check_positive_int
from ..data import DataSplits
from ..ensemble import Ensemble
from ..errors import UserError
from ..models import ModelSource, make_model
from ..subnet import derive_seed
from ..train import TrainConfig
from .common import BaselineResult, fit_stage, training_flops


def _train_one(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, dropout: float | None = None,
               train=None, device="auto", progress=False, desc="train", workdir=None, stage="model"):
    model = make_model(model, data.input_shape, data.num_classes, dropout=dropout, seed=cfg.seed)
    train = data.train if train is None else train
    res = fit_stage(model, train, cfg, augment=data.augment, device=device, progress=progress, desc=desc,
                    workdir=workdir, stage=stage)
    flops = training_flops(model, data, cfg.batch_size, cfg.epochs * len(train))
    return model, res, flops


def independent(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, device="auto",
                progress=False, workdir=None) -> BaselineResult:
    """One model trained for ``cfg.epochs``.

    ``model``: a registry name, your own ``nn.Module`` (a template: copied, its copy initialised
    afresh from ``cfg.seed``) or a zero-argument function returning one (as every peer takes).
    """
    net, res, flops = _train_one(model, data, cfg, device=device, progress=progress,
                                 desc="independent", workdir=workdir)
    return BaselineResult(Ensemble([net]), float(cfg.epochs), res.seconds, flops,
                          members=[{"seed": cfg.seed}], history=res.history)


def dropout_model(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, p: float | None = None,
                  device="auto", progress=False, workdir=None) -> BaselineResult:
    """The same model with dropout ``p`` after every hidden layer (evaluated without dropout).

    A registry name gets dropout layers of rate ``p`` (default 0.5); your own model uses its own
    dropout layers (at rate ``p`` when given) and must have some.
    """
    if isinstance(model, str):
        p = 0.5 if p is None else p
    else:
        _require_dropout(model, "the dropout model")
    net, res, flops = _train_one(model, data, cfg, dropout=p, device=device, progress=progress,
                                 desc="dropout", workdir=workdir)
    return BaselineResult(Ensemble([net]), float(cfg.epochs), res.seconds, flops,
                          members=[{"seed": cfg.seed, "dropout": p}], history=res.history)


def _require_dropout(model: ModelSource, method: str) -> None:
    """Your own model brings its dropout layers (none are added to it)."""
    from ..models.source import dropout_layers

    probe = make_model(model, (1, 1, 1), 1, seed=0)  # a copy: the user's model is never touched
    if not dropout_layers(probe):
        raise UserError(f"{method} uses the model's own dropout layers, and {type(probe).__name__} has none "
                        "(add nn.Dropout layers, or use a registry name, which gets them)")


def _seeded_models(model: ModelSource, data, cfg, members, *, stream, fraction=None, device, progress, workdir, desc):
    ens, seconds, flops, info, epochs = Ensemble(), 0.0, 0.0, [], 0.0
    n = len(data.train)
    for i in range(members):
        seed = derive_seed(cfg.seed, stream, i) % (2**31)
        train = None
        if fraction is not None:
            g = torch.Generator().manual_seed(seed)
            train = data.train.subset(torch.randperm(n, generator=g)[: int(round(fraction * n))])
        net, res, f = _train_one(model, data, replace(cfg, seed=seed), train=train, device=device,
                                   progress=progress, desc=f"{desc} {i + 1}/{members}", workdir=workdir,
                                   stage=f"member_{i}")
        d = {"seed": seed} if fraction is None else {"seed": seed, "fraction": fraction}
        ens.add(net, d)
        info.append(d)
        seconds, flops = seconds + res.seconds, flops + f
        epochs += cfg.epochs * (1.0 if fraction is None else fraction)
    return BaselineResult(ens, epochs, seconds, flops, members=info)


def bagging(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 8,
            fraction: float = 0.9, device="auto", progress=False, workdir=None) -> BaselineResult:
    """``members`` models, each trained ``cfg.epochs`` on its own random ``fraction`` of train
    (drawn without replacement, seeded per member); epochs count full-split passes."""
    check_fraction(fraction, "bagging fraction")
    check_positive_int(members, "members")
    return _seeded_models(model, data, cfg, members, stream=3, fraction=fraction, device=device,
                          progress=progress, workdir=workdir, desc="bag")


def deep_ensemble(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 4,
                  device="auto", progress=False, workdir=None) -> BaselineResult:
    """``members`` dense models from different seeds, each trained ``cfg.epochs`` on all of train."""
    check_positive_int(members, "members")
    return _seeded_models(model, data, cfg, members, stream=4, device=device, progress=progress,
                          workdir=workdir, desc="member")


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "independent", "title": "Independent model", "function": "independent",
     "summary": "one model, the budget's epochs", "members": 1, "size": None},
    {"name": "dropout", "title": "Dropout model", "function": "dropout_model",
     "summary": "one model with dropout, evaluated without it", "members": 1, "size": None,
     "options": {"p": "dropout"}},
    {"name": "bagging", "title": "Bagging", "function": "bagging",
     "summary": "M models of --member-epochs on random 90% subsets", "members": 8,
     "options": {"fraction": "bag_fraction"}, "budget": "split"},
    {"name": "deep-ensemble", "title": "Deep Ensemble", "function": "deep_ensemble",
     "summary": "M models of --member-epochs from different seeds", "members": 4, "budget": "split"},
]
