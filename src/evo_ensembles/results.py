"""The schema of every ``results.json``: typed records, documented here once.

Recipes build their results as these ``TypedDict`` records (a ``results.json`` is the
record as JSON, keys stable across versions); a type checker checks the recipes, and the
tests check each written file against ``__required_keys__``.

Conventions: metrics are computed on the untouched test split unless a key says
``validation``; ECE uses ``ece_bins`` equal-width bins; seconds count work done in this
invocation (0 when a cached parent or child was reused).
"""

from __future__ import annotations

from typing import Any, TypedDict


class Metrics(TypedDict):
    """One prediction's scores (:func:`evo_ensembles.metrics.classification_metrics`)."""

    accuracy: float
    nll: float  # of the (averaged) probabilities
    ece: float
    brier: float


class EnsembleMetrics(Metrics):
    size: int  # voters, the parent included when it votes
    combine: str  # "mean" of probabilities or "vote"
    include_parent: bool


class Diversity(TypedDict):
    """Off-diagonal means over member pairs, and the M×M matrices."""

    disagreement: float
    kl: float
    correlation: float
    matrices: dict[str, list[list[float]]]


class Provenance(TypedDict):
    library_version: str
    commit: str | None
    hardware: dict[str, Any]
    finished_at: str


class ClassifierResults(Provenance):
    """Keys shared by the classifier runs (``sparse``, ``stochastic``, ``noisy``)."""

    method: str
    split: str  # "test"
    ece_bins: int
    parent: Metrics
    ensemble: EnsembleMetrics
    members: list[dict[str, Any]]  # Metrics plus the member's descriptor and method keys
    diversity: Diversity
    # cAcc/cNLL/cECE of parent and ensemble on the data set's corrupted test set (None without
    # one): {"set": ..., "parent": ..., "ensemble": {accuracy, nll, ece, accuracy_by_severity, ...}}
    corrupted: dict[str, Any] | None
    validation: dict[str, Any] | None  # parent and ensemble (baseline: and members) on the validation split
    config: dict[str, Any]  # the resolved run config
    seed: int
    data: dict[str, Any]  # data set, sizes, subset, augmentation
    timing: dict[str, Any]


class TrainingCost(TypedDict):
    """:class:`evo_ensembles.flops.TrainingCost`: FLOPs relative to one dense model."""

    flops: float
    reference_flops: float
    epochs: float
    reference_epochs: float
    relative: float


class BaselineResults(ClassifierResults):
    """``baseline`` (a peer method): ``parent`` is None; members add the method's own keys
    (seed, density, lr at collection, …)."""

    training_flops: float  # relative to one dense model trained for the budget's epochs
    epochs: float  # epochs run, summed over separately trained models
    training_cost: TrainingCost


class SparseResults(ClassifierResults):
    """``sparse`` and ``stochastic`` (which adds ``annealing``); members add ``density``
    and ``tune_seconds``. ``training_flops`` is relative to one dense model trained for the
    parent's plus the children's epochs (None for a parent checkpoint without its training
    record)."""

    training_flops: float | None
    epochs: float | None
    training_cost: TrainingCost | None


class NoisyResults(ClassifierResults):
    """``noisy``; members add ``kl`` (to the parent), ``validation`` and ``descriptor``."""

    mode: str  # "population", "descriptors" or "evolved-<algorithm>"
    delta_accuracy: float
    delta_nll: float
    delta_ece: float
    training_flops: float | None  # the parent's training (children are not trained): 1.0
    epochs: float | None
    training_cost: TrainingCost | None
    sigma: float | list[float]
    density: float
    mean_kl: float
    trust_region: dict[str, Any] | None
    population: list[dict[str, Any]] | None
    evolution: dict[str, Any] | None


class EpisodeSummary(TypedDict):
    mean_return: float
    std_return: float
    episodes: int
    returns: list[float]
    levels: str
    seed: int


class RLResults(Provenance):
    """``rl evaluate``: parent and (optionally) ensemble on the same episodes and action rule."""

    method: str  # "rl" or "rl-noisy"
    env: str
    agent: str
    preset: str
    agent_timesteps: int | None
    parent: dict[str, Any]  # EpisodeSummary plus the action rule
    ensemble: dict[str, Any] | None  # EpisodeSummary plus size, action rule and perturbation scope
    sigma: float | None
    density: float
    members: list[dict[str, Any]]
    config: dict[str, Any]
    seed: int
    timing: dict[str, Any]


__all__ = ["BaselineResults", "ClassifierResults", "TrainingCost", "Diversity", "EnsembleMetrics", "EpisodeSummary", "Metrics", "NoisyResults",
           "Provenance", "RLResults", "SparseResults"]
