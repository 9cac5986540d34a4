"""Checkpoint Ensemble (Chen et al. 2017, "Checkpoint Ensembles: Ensemble Methods from a Single
Training Process"): the last ``members`` epoch-end checkpoints of one ordinary training run.

One run of the budget's own schedule, so it costs exactly one model's training; the members
are the weights after each of the last ``members`` epochs.

Example:
    >>> from evo_ensembles import load_dataset, TrainConfig
    >>> data = load_dataset("fashion-mnist", subset=256)                              # doctest: +SKIP
    >>> res = checkpoint_ensemble("lenet-5", data, TrainConfig(epochs=4), members=2)   # doctest: +SKIP
    >>> len(res.ensemble), [m["epoch"] for m in res.members]                          # doctest: +SKIP
    (2, [3.0, 4.0])
"""

from __future__ import annotations

from ..checks import check_positive_int
from ..data import DataSplits
from ..data.loaders import steps_per_epoch
from ..ensemble import Ensemble
from ..errors import UserError
from ..models import ModelSource, make_model
from ..train import TrainConfig, fit
from .common import BaselineResult, stage_dir, training_flops
from .cyclic import CollectAtSteps, _members_from


def checkpoint_ensemble(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 3,
                        device="auto", progress=False, workdir=None) -> BaselineResult:
    """Train one model for ``cfg.epochs`` with ``cfg``'s schedule; the ensemble is its weights
    after each of the last ``members`` epochs."""
    check_positive_int(members, "members")
    if members > cfg.epochs:
        raise UserError(f"a checkpoint ensemble keeps one checkpoint per epoch: members ({members}) must be "
                        f"at most epochs ({cfg.epochs})")
    spe = steps_per_epoch(data.train, cfg.batch_size)
    epochs = [cfg.epochs - members + i + 1 for i in range(members)]
    keep = CollectAtSteps([e * spe - 1 for e in epochs])
    net = make_model(model, data.input_shape, data.num_classes, seed=cfg.seed)
    res = fit(net, data.train, cfg, val=data.val, augment=data.augment, device=device, callbacks=[keep],
              checkpoint_dir=stage_dir(workdir, "model"), progress=progress, desc="checkpoints")
    flops = training_flops(net, data, cfg.batch_size, cfg.epochs * len(data.train))
    return BaselineResult(Ensemble(_members_from(net, keep)), float(cfg.epochs), res.seconds, flops,
                          members=[{"epoch": float(e)} for e in epochs], history=res.history)


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "checkpoints", "title": "Checkpoint Ensemble", "function": "checkpoint_ensemble",
     "summary": "one run of the budget; its last M epoch-end checkpoints", "members": 3},
]
