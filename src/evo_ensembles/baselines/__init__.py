"""Peer methods behind one interface: each is a function ``method(model_name, data, cfg, *,
members=..., ..., device="auto", progress=False, workdir=None) -> BaselineResult`` that trains
through the one training loop and returns a :class:`~evo_ensembles.ensemble.BaseEnsemble`
with its cost in epochs and FLOPs (see :mod:`.common`). :data:`PEERS` names them all."""

import importlib
from collections.abc import Callable

from .batchensemble import BatchEnsemble, batch_ensemble, to_batch_ensemble
from .common import BaselineResult, MultiOutputEnsemble, reference_flops
from .cyclic import CollectAtSteps, fge, snapshot
from .dynamic_sparsity import DynamicSparsity, erk_densities, erk_mask
from .freetickets import dst, edst
from .mc_dropout import MCDropoutEnsemble, mc_dropout
from .mimo import MIMO, MIMOLoss, mimo, mimo_indices, to_mimo
from .mothernets import mothernet_hidden, mothernets, widen_mlp
from .simple import bagging, deep_ensemble, dropout_model, independent
from .treenet import TreeNet, treenet, treenet_model

# method name -> "module:function" (imported on use, so one method's extras never block another)
PEERS: dict[str, str] = {
    "independent": ".simple:independent",
    "dropout": ".simple:dropout_model",
    "mc-dropout": ".mc_dropout:mc_dropout",
    "bagging": ".simple:bagging",
    "deep-ensemble": ".simple:deep_ensemble",
    "snapshot": ".cyclic:snapshot",
    "fge": ".cyclic:fge",
    "treenet": ".treenet:treenet",
    "batchensemble": ".batchensemble:batch_ensemble",
    "mimo": ".mimo:mimo",
    "dst": ".freetickets:dst",
    "edst": ".freetickets:edst",
    "mothernets": ".mothernets:mothernets",
}


def get_peer(name: str) -> Callable[..., BaselineResult]:
    """The library function of peer method ``name`` (see :data:`PEERS`)."""
    module, function = PEERS[name].split(":")
    return getattr(importlib.import_module(module, __name__), function)


__all__ = [
    "MIMO",
    "PEERS",
    "BaselineResult",
    "BatchEnsemble",
    "CollectAtSteps",
    "DynamicSparsity",
    "MCDropoutEnsemble",
    "MIMOLoss",
    "MultiOutputEnsemble",
    "TreeNet",
    "bagging",
    "batch_ensemble",
    "deep_ensemble",
    "dropout_model",
    "dst",
    "edst",
    "erk_densities",
    "erk_mask",
    "fge",
    "get_peer",
    "independent",
    "mc_dropout",
    "mimo",
    "mimo_indices",
    "mothernet_hidden",
    "mothernets",
    "reference_flops",
    "snapshot",
    "to_batch_ensemble",
    "to_mimo",
    "treenet",
    "treenet_model",
    "widen_mlp",
]
