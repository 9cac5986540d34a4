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
"""

__version__ = "0.1.0"

from .data import ArrayData, Augment, BatchLoader, DataSplits, available_datasets, load_dataset
from .devices import resolve_device
from .ensemble import Ensemble, combine, predict_probs
from .errors import CheckpointError, DataNotFoundError, UnknownNameError, UserError
from .es import (
    ClassifierFitness,
    NoiseSampling,
    SubnetworkES,
    evaluate_children,
    make_noisy_specs,
    search_sigma,
)
from .methods.noisy import NoisyEnsemble, noisy_ensemble
from .methods.sparse import KeepPruned, prune_and_tune, prune_child, tune_child
from .methods.stochastic import IterativePruning, StochasticMasks, anneal_and_tune, build_child
from .metrics import (
    accuracy,
    brier,
    classification_metrics,
    diversity,
    ece,
    nll,
)
from .models import available_models, build_model
from .subnet import (
    AnnealPlan,
    ChildSpec,
    InPlacePerturber,
    anneal_plan,
    anneal_value,
    apply_mask,
    eligible_parameters,
    make_child_specs,
    mask_density,
    pack_mask,
    partition_masks,
    partition_probabilities,
    sample_mask,
    unpack_mask,
)
from .train import Callback, TrainConfig, fit, save_model

__all__ = [
    "AnnealPlan",
    "IterativePruning",
    "StochasticMasks",
    "anneal_and_tune",
    "anneal_plan",
    "anneal_value",
    "build_child",
    "partition_probabilities",
    "InPlacePerturber",
    "noisy_ensemble",
    "NoisyEnsemble",
    "search_sigma",
    "make_noisy_specs",
    "evaluate_children",
    "SubnetworkES",
    "NoiseSampling",
    "ClassifierFitness",
    "ArrayData",
    "Augment",
    "BatchLoader",
    "Callback",
    "CheckpointError",
    "ChildSpec",
    "DataNotFoundError",
    "DataSplits",
    "Ensemble",
    "KeepPruned",
    "TrainConfig",
    "UnknownNameError",
    "UserError",
    "__version__",
    "accuracy",
    "apply_mask",
    "available_datasets",
    "available_models",
    "brier",
    "build_model",
    "classification_metrics",
    "combine",
    "diversity",
    "ece",
    "eligible_parameters",
    "fit",
    "load_dataset",
    "make_child_specs",
    "mask_density",
    "nll",
    "pack_mask",
    "partition_masks",
    "predict_probs",
    "prune_and_tune",
    "prune_child",
    "resolve_device",
    "sample_mask",
    "save_model",
    "tune_child",
    "unpack_mask",
]
