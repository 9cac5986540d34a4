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
    ece: float  # ece_bins equal-width bins
    adaptive_ece: float  # ece_bins equal-mass bins
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
    """What made a result (:func:`evo_ensembles.recipes.common.provenance`); every run and
    benchmark row carries these keys."""

    library_version: str
    # The checkout's full commit, 40 hex digits and never a suffix (None outside a git checkout).
    # Files written before this key was split end in "-dirty" when a tracked file differed.
    commit: str | None
    # Whether the code (src/, benchmarks/*.py, requirements/, pyproject.toml: tracked changes
    # and untracked code files, never result files) differed from `commit`; None when unknown
    # (no git checkout, or a benchmark's EVO_COMMIT naming a commit this checkout is not at).
    code_dirty: bool | None
    # When code_dirty: SHA-256 of `git diff HEAD` of those paths plus the untracked code files'
    # paths and contents (equal hashes: the same code); None otherwise.
    code_diff_sha256: str | None
    hardware: dict[str, Any]
    finished_at: str


class TemperatureFitRecord(TypedDict):
    """:class:`evo_ensembles.calibration.TemperatureFit` as JSON (fit on validation)."""

    temperature: float
    where: str  # "members": T divides each voter's logits; "combined": T on log of the combined probs
    nll_before: float | None  # validation NLL at T = 1 (None for an empty split)
    nll_after: float | None  # validation NLL at T
    examples: int
    at_bound: bool
    fallback: str | None  # why T = 1 was kept (None: fit)


class Calibrated(TypedDict):
    """One model's (or the ensemble's) temperature and its temperature-scaled test scores."""

    temperature: float
    fit: TemperatureFitRecord
    test: Metrics


class CalibrationResults(TypedDict):
    """``calibrated``: every temperature is fit on the validation split only."""

    method: str
    fit_on: str  # "validation"
    validation_examples: int
    parent: Calibrated | None  # None without a parent (the peer methods)
    members: list[Calibrated]  # each member with its own temperature
    ensemble: Calibrated  # plus "where"
    # Reliability-diagram points on test: {"parent", "parent + T", "ensemble", "ensemble + T"}
    # → {"confidence": [...], "accuracy": [...], "count": [...]} (equal-width bins, empty ones left out)
    reliability: dict[str, dict[str, list[float]]]


class OODResults(TypedDict):
    """``ood``: detection of each OOD set against the test split, by the temperature-scaled
    parent and ensemble. ``sets[name]`` = {"examples": N, "parent": {score: OODMetrics},
    "ensemble": {score: OODMetrics}}, OODMetrics = {auroc, aupr_in, aupr_out, fpr95};
    scores: max_prob (as 1 − max prob), entropy, mutual_information, variation_ratio, energy
    (the parent: max_prob, entropy, energy). ``sets`` is empty when no OOD set was scored."""

    convention: str
    in_distribution: str
    sets: dict[str, dict[str, Any]]


class SelectiveResults(TypedDict):
    """``selective``: {aurc, augrc, risk_at_90} of the temperature-scaled parent (None without
    one) and ensemble, ranked by max probability (lower is better)."""

    ranked_by: str
    parent: dict[str, float] | None
    ensemble: dict[str, float]


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
    calibrated: CalibrationResults
    ood: OODResults
    selective: SelectiveResults
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
    # One row per (policy, level set, action rule): {"policy": "parent"|"ensemble", "action",
    # **EpisodeSummary}; the primary pair first, then --train-returns and --both-rules scores.
    scores: list[dict[str, Any]]
    config: dict[str, Any]
    seed: int
    timing: dict[str, Any]


__all__ = ["BaselineResults", "Calibrated", "CalibrationResults", "ClassifierResults", "OODResults",
           "SelectiveResults", "TemperatureFitRecord", "TrainingCost", "Diversity", "EnsembleMetrics", "EpisodeSummary",
           "Metrics", "NoisyResults", "Provenance", "RLResults", "SparseResults"]
