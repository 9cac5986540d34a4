"""Peer methods behind one interface: each is a function ``method(model, data, cfg, *,
members=..., ..., device="auto", progress=False, workdir=None) -> BaselineResult`` that trains
through the one training loop and returns a :class:`~evo_ensembles.ensemble.BaseEnsemble`
with its cost in epochs and FLOPs (see :mod:`.common`). :data:`PEERS` names them all."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..methods.registry import method, peer_names

if TYPE_CHECKING:
    from .common import BaselineResult

# method name -> "module:function", from the registry (each peer declares itself in its module)
PEERS: dict[str, str] = {name: f"{method(name).module}:{method(name).function}" for name in peer_names()}

# The public names of the peer modules, imported when first used (so one method's extras
# never block another, and ``import evo_ensembles.baselines`` stays light).
_EXPORTS = {
    "BatchEnsemble": "batchensemble", "batch_ensemble": "batchensemble", "to_batch_ensemble": "batchensemble",
    "BaselineResult": "common", "MultiOutputEnsemble": "common", "reference_flops": "common",
    "CollectAtSteps": "cyclic", "fge": "cyclic", "snapshot": "cyclic",
    "DynamicSparsity": "dynamic_sparsity", "erk_densities": "dynamic_sparsity", "erk_mask": "dynamic_sparsity",
    "dst": "freetickets", "edst": "freetickets",
    "MCDropoutEnsemble": "dropout_passes", "mc_dropout": "dropout_passes",
    "MIMO": "multi_input", "MIMOLoss": "multi_input", "mimo": "multi_input", "mimo_indices": "multi_input",
    "to_mimo": "multi_input",
    "mothernet_hidden": "hatching", "mothernets": "hatching", "widen_mlp": "hatching",
    "bagging": "simple", "deep_ensemble": "simple", "dropout_model": "simple", "independent": "simple",
    "TreeNet": "shared_trunk", "treenet": "shared_trunk", "treenet_model": "shared_trunk",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_peer(name: str) -> Callable[..., BaselineResult]:
    """The library function of peer method ``name`` (see :data:`PEERS`)."""
    spec = method(name)
    if spec.family != "peer":
        raise KeyError(name)
    fn: Callable[..., BaselineResult] = spec.load()
    return fn


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
