"""evo_ensembles: turn one trained network into a strong, cheap ensemble.

Build a Sparse Subnetwork Ensemble from your own trained model::

    import evo_ensembles as ee
    data = ee.load_dataset("fashion-mnist", subset=2000)
    specs = ee.make_child_specs(4, density=0.5, partition=True, seed=0)
    ens = ee.prune_and_tune(my_parent, specs, data.train, ee.TrainConfig(epochs=1))
    probs = ens.member_probs(data.test.x)                 # (M, B, C)
    print(ee.classification_metrics(ee.combine(probs), data.test.y))

or a Stochastic Subnetwork Ensemble (children tuned with annealed random masks)::

    specs = ee.make_child_specs(4, 0.5, partition=True, seed=0, kind="stochastic",
                                anneal="temperature", t0=0.5, anneal_epochs=1)
    ens = ee.anneal_and_tune(my_parent, specs, data.train, ee.TrainConfig(epochs=2))

or a Noisy Subnetwork Ensemble, without training any child::

    res = ee.noisy_ensemble(my_parent, data.val.x, data.val.y, target_kl=0.02, popsize=16, top_k=8)
    probs = res.ensemble.member_probs(data.test.x)

The top level holds what a user builds ensembles with (methods, ``Ensemble``,
``ChildSpec``, metrics, data, models, training). It imports lazily: ``import
evo_ensembles`` loads nothing heavy, and each name loads its module on first use. The
low-level pieces live in :mod:`evo_ensembles.subnet` (masks, noise, annealing) and
:mod:`evo_ensembles.es` (populations, trust region, EvoTorch); the names that used to be
re-exported here still resolve, but are not part of ``__all__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# name -> module (relative to this package) that defines it
_TOP = {
    # methods and ensembles
    "prune_and_tune": ".methods.sparse",
    "anneal_and_tune": ".methods.stochastic",
    "noisy_ensemble": ".methods.noisy",
    "NoisyEnsemble": ".methods.noisy",
    "Ensemble": ".ensemble",
    "combine": ".ensemble",
    "predict_probs": ".ensemble",
    "predict_logits": ".ensemble",
    # calibration and uncertainty
    "TemperatureFit": ".calibration",
    "fit_temperature": ".calibration",
    "tempered_probs": ".calibration",
    "Uncertainty": ".input_scores",
    "uncertainty": ".input_scores",
    "selective_predict": ".input_scores",
    # children
    "ChildSpec": ".subnet.descriptor",
    "make_child_specs": ".subnet.descriptor",
    "make_noisy_specs": ".es.population",
    # metrics
    "accuracy": ".metrics",
    "brier": ".metrics",
    "classification_metrics": ".metrics",
    "diversity": ".metrics",
    "ece": ".metrics",
    "nll": ".metrics",
    "adaptive_ece": ".metrics",
    "auroc": ".metrics",
    "aupr": ".metrics",
    "fpr_at_tpr": ".metrics",
    "ood_metrics": ".metrics",
    "aurc": ".metrics",
    "augrc": ".metrics",
    "risk_at_coverage": ".metrics",
    "selective_metrics": ".metrics",
    "deep_ensemble_equivalent": ".metrics",
    # data and models
    "ArrayData": ".data",
    "DataSplits": ".data",
    "available_datasets": ".data",
    "load_dataset": ".data",
    "available_models": ".models",
    "build_model": ".models",
    # training
    "Callback": ".train",
    "TrainConfig": ".train",
    "fit": ".train",
    "save_model": ".train",
    "load_model": ".train.parent",
    "load_run": ".analysis.runs",
    "resolve_device": ".devices",
    # errors
    "CheckpointError": ".errors",
    "DataNotFoundError": ".errors",
    "UnknownNameError": ".errors",
    "UserError": ".errors",
}
# Low-level names kept importable from the top level for existing code (not in __all__).
_LOW = {
    **dict.fromkeys(["Augment", "BatchLoader"], ".data"),
    **dict.fromkeys(
        ["ClassifierFitness", "NoiseSampling", "SubnetworkES", "evaluate_children", "search_sigma"],
        ".es",
    ),
    **dict.fromkeys(["KeepPruned", "prune_child", "tune_child"], ".methods.sparse"),
    **dict.fromkeys(["IterativePruning", "StochasticMasks", "build_child"], ".methods.stochastic"),
    **dict.fromkeys(
        [
            "AnnealPlan",
            "InPlacePerturber",
            "anneal_plan",
            "anneal_value",
            "apply_mask",
            "eligible_parameters",
            "mask_density",
            "pack_mask",
            "partition_masks",
            "partition_probabilities",
            "sample_mask",
            "unpack_mask",
        ],
        ".subnet",
    ),
}

__all__ = ["__version__", *sorted(_TOP)]


def __getattr__(name: str) -> Any:
    module = _TOP.get(name) or _LOW.get(name)
    if module is None:
        raise AttributeError(f"module 'evo_ensembles' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_TOP})


if TYPE_CHECKING:  # static checkers and IDEs see the real names
    from .analysis.runs import load_run  # noqa: F401
    from .calibration import TemperatureFit, fit_temperature, tempered_probs  # noqa: F401
    from .data import ArrayData, DataSplits, available_datasets, load_dataset  # noqa: F401
    from .devices import resolve_device  # noqa: F401
    from .ensemble import Ensemble, combine, predict_logits, predict_probs  # noqa: F401
    from .errors import CheckpointError, DataNotFoundError, UnknownNameError, UserError  # noqa: F401
    from .es.population import make_noisy_specs  # noqa: F401
    from .input_scores import Uncertainty, selective_predict, uncertainty  # noqa: F401
    from .methods.noisy import NoisyEnsemble, noisy_ensemble  # noqa: F401
    from .methods.sparse import prune_and_tune  # noqa: F401
    from .methods.stochastic import anneal_and_tune  # noqa: F401
    from .metrics import (  # noqa: F401
        accuracy,
        adaptive_ece,
        augrc,
        aupr,
        aurc,
        auroc,
        brier,
        classification_metrics,
        deep_ensemble_equivalent,
        diversity,
        ece,
        fpr_at_tpr,
        nll,
        ood_metrics,
        risk_at_coverage,
        selective_metrics,
    )
    from .models import available_models, build_model  # noqa: F401
    from .subnet.descriptor import ChildSpec, make_child_specs  # noqa: F401
    from .train import Callback, TrainConfig, fit, save_model  # noqa: F401
    from .train.parent import load_model  # noqa: F401
