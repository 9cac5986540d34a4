"""Noisy Subnetwork Ensembles (SPEC §2): no training, children are noisy subnetworks.

:func:`noisy_ensemble` runs the whole method on a trained classifier: trust-region search
for σ on a probe set, a population of N mirrored + partitioned children scored on the
validation split, the top K kept. The result is a :class:`NoisyEnsemble` — the parent plus
K descriptors — which predicts by turning the parent into each member in place (memory of
one model), and saves as a small JSON file next to the parent checkpoint.

Examples:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> x, y = torch.randn(200, 4), torch.randint(0, 3, (200,))
    >>> res = noisy_ensemble(net, x, y, popsize=8, top_k=4, sigma=0.02, progress=False)
    >>> len(res.ensemble), res.ensemble.member_probs(x[:5]).shape
    (4, torch.Size([4, 5, 3]))
"""

from __future__ import annotations

import copy
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.loaders import as_tensors
from ..ensemble import BaseEnsemble, predict_logits
from ..errors import CheckpointError, UserError
from ..es import ClassifierFitness, NoiseSampling, TrustRegion
from ..es.select import NoisySearch, select_children
from ..run_folder import write_json
from ..schema import NOISY_ENSEMBLE
from ..subnet import (
    ChildSpec,
    InPlacePerturber,
    add_noise_,
    eligible_parameters,
    resolve_dense_layers,
)
from ..train.checkpoint import parent_fingerprint

# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "noisy", "title": "Noisy Subnetwork Ensemble", "function": "noisy_ensemble",
     "summary": "children with sparse Gaussian noise on random subnetworks, no training; top K on validation",
     "reader": "noisy"},
]


__all__ = ["NoisyEnsemble", "NoisyResult", "noisy_ensemble", "parent_fingerprint"]

FORMAT = "evo_ensembles.noisy_ensemble/1"


class NoisyEnsemble(BaseEnsemble):
    """A parent and K noisy-child descriptors; predictions regenerate each member in place.

    Args:
        parent: the trained network (its weights are restored exactly after every member).
        specs: the members' descriptors (``kind="noise"``).
        include_parent: the parent votes too (the paper's Algorithm 1).
        combine: ``"mean"`` of probabilities (default) or ``"vote"``.
        eligibility: options of ``eligible_parameters`` the children were drawn over.
    """

    parent: nn.Module  # required here (optional in BaseEnsemble): the children are regenerated from it

    def __init__(self, parent: nn.Module, specs: Sequence[ChildSpec], *, include_parent: bool = False,
                 combine: str = "mean", eligibility: dict | None = None) -> None:
        super().__init__(parent=parent, include_parent=include_parent, combine=combine)
        if any(s.kind != "noise" for s in specs):
            raise UserError("a noisy ensemble holds 'noise' children only")
        self.specs = list(specs)
        self.eligibility = dict(eligibility or {})
        self._perturber: InPlacePerturber | None = None

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def perturber(self) -> InPlacePerturber:
        # Built lazily so it copies the parent as it is when first used.
        if self._perturber is None:
            self._perturber = InPlacePerturber(self.parent, **self.eligibility)
        return self._perturber

    def _own_member_logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        out = []
        for spec in self.specs:
            with self.perturber.child(spec):
                out.append(predict_logits(self.parent, x, batch_size=batch_size))
        return torch.stack(out)

    def _voting_modules(self) -> list[nn.Module]:
        return [self.child(i) for i in range(len(self))]  # K copies of the parent: K× its memory

    def child(self, i: int) -> nn.Module:
        """Member ``i`` as a standalone model (a copy of the parent)."""
        model = copy.deepcopy(self.parent)
        add_noise_(eligible_parameters(model, **self.eligibility), self.specs[i])
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "parent_fingerprint": parent_fingerprint(self.parent),
                "include_parent": self.include_parent, "combine": self.combine_method,
                "eligibility": self.eligibility, "descriptors": [s.to_dict() for s in self.specs],
                "temperature": None if self.temperature is None else self.temperature.to_dict()}

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the descriptors as JSON (atomically); the parent is saved separately."""
        path = Path(path)
        write_json(path, {**self.to_dict(), **extra})
        return path

    @classmethod
    def from_dict(cls, d: dict, parent: nn.Module, *, source: str = "descriptor file") -> NoisyEnsemble:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CheckpointError(f"{source} is not a noisy ensemble ({FORMAT})")
        NOISY_ENSEMBLE.check(d, source)
        fp = parent_fingerprint(parent)
        if d.get("parent_fingerprint") != fp:
            raise CheckpointError(f"{source} was made from a different parent (fingerprint "
                                  f"{str(d.get('parent_fingerprint'))[:12]}…, this parent {fp[:12]}…)")
        try:
            specs = [ChildSpec.from_dict(s) for s in d["descriptors"]]
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{source}: malformed descriptors ({e})") from None
        if any(s.noise_seed is None for s in specs):
            raise CheckpointError(f"{source}: a noisy child descriptor has no noise_seed")
        ens = cls(parent, specs, include_parent=bool(d.get("include_parent", False)),
                  combine=d.get("combine", "mean"), eligibility=d.get("eligibility") or {})
        if d.get("temperature") is not None:  # fit on validation by the run (or fit_temperature)
            from ..calibration import TemperatureFit

            ens.temperature = TemperatureFit.from_dict(d["temperature"], source=source)
        return ens

    @classmethod
    def load(cls, path: str | Path, parent: nn.Module) -> NoisyEnsemble:
        """Read descriptors saved by :meth:`save`; the parent must be the one they came from."""
        import json

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"descriptor file not found: {path}")
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read descriptor file {path}: {e}") from None
        return cls.from_dict(d, parent, source=str(path))


@dataclass
class NoisyResult:
    """What :func:`noisy_ensemble` found: the ensemble and how it was chosen."""

    ensemble: NoisyEnsemble
    sigma: float
    trust_region: TrustRegion | None
    population: list[ChildSpec]
    records: list[dict]
    selected: list[int]
    history: list[dict] = field(default_factory=list)


def noisy_ensemble(
    parent: nn.Module,
    val_x: Any,
    val_y: torch.Tensor | None = None,
    settings: NoisySearch | None = None,
    *,
    probe_x: torch.Tensor | None = None,
    probe_y: torch.Tensor | None = None,
    fitness_metric: str = "accuracy",
    include_parent: bool = False,
    combine: str = "mean",
    seed: int = 0,
    num_actors: int = 0,
    eligibility: dict | None = None,
    progress: bool = True,
    cache: MutableMapping[str, dict] | None = None,
    **settings_kw: Any,
) -> NoisyResult:
    """Build a Noisy Subnetwork Ensemble of a trained classifier (SPEC §2).

    Args:
        parent: the trained classifier (left unchanged).
        val_x: the *validation* inputs children are selected on (never test data): a tensor,
            or an ArrayData, ``Dataset`` or ``DataLoader`` with ``val_y`` None (held in memory
            once: every child is scored on it).
        val_y: the validation labels (None when ``val_x`` carries them).
        settings: how children are drawn and chosen (:class:`~evo_ensembles.es.NoisySearch`);
            or give its fields as keywords: ``target_kl``, ``sigma`` (skips the σ search),
            ``search`` (``"grid"`` or ``"bisect"``), ``sigmas``, ``densities``,
            ``probe_children``, ``popsize``, ``top_k`` (paper's ImageNet setting: 16 and 8),
            and the :class:`~evo_ensembles.es.NoiseSampling` fields ``density``,
            ``mirrored``, ``partitioned``, ``structured``, ``scope``, ``mu``,
            ``dense_layers`` (the pruning scope, also used by the σ search).
        probe_x: inputs of the KL trust region (default: the first 1,000 validation examples).
        probe_y: optional labels of ``probe_x``, for accuracy-vs-KL curves.
        fitness_metric: ``"accuracy"`` or ``"nll"`` on the validation split.
        include_parent: whether the parent votes in the ensemble.
        combine: how the members' outputs are combined (``"mean"`` or ``"vote"``).
        num_actors: ≥ 2 evaluates the population on Ray actors through EvoTorch.
        eligibility: ``eligible_parameters`` options (include_bias, include_norm, exclude).
        cache: keeps finished trust-region cells and child records (e.g. a
            :class:`~evo_ensembles.train.checkpoint.RecordCache` keyed by the parent and the
            data), so an interrupted search resumes; not used with Ray actors.
    """
    val_x, val_y = as_tensors(val_x, val_y)
    if probe_x is not None:
        probe_x, probe_y = (probe_x, probe_y) if isinstance(probe_x, torch.Tensor) else as_tensors(probe_x)
    if settings is None:
        settings = NoisySearch.from_kwargs(**settings_kw)
    elif settings_kw:
        settings = replace(settings, **settings_kw)
    eligibility = dict(eligibility or {})
    perturber = InPlacePerturber(parent, **eligibility)
    resolve_dense_layers(perturber.params, settings.sampling.dense_layers)  # unknown layers fail here
    if probe_x is None:
        probe_x, probe_y = val_x[:1000], val_y[:1000]
    probe = ClassifierFitness(probe_x, probe_y, reference=parent)
    fitness = ClassifierFitness(val_x, val_y, metric=fitness_metric, reference=parent)
    evaluate = None
    if num_actors >= 2:
        from ..es.evotorch_bridge import DescriptorProblem, evaluate_population

        def evaluate(specs):
            problem = DescriptorProblem(parent, fitness, sampling=specs_sampling(specs, settings),
                                        num_actors=num_actors, eligibility=eligibility)
            try:
                return evaluate_population(problem, specs)
            finally:
                problem.kill_actors()
    sel = select_children(perturber, probe, fitness, settings, seed=seed, progress=progress, evaluate=evaluate,
                          cache=cache)
    assert sel.records is not None  # there is a fitness, so every child was scored
    ens = NoisyEnsemble(parent, sel.members, include_parent=include_parent, combine=combine,
                        eligibility=eligibility)
    return NoisyResult(ens, sel.sigma, sel.trust_region, sel.population, sel.records, sel.selected,
                       sel.history)


def specs_sampling(specs: Sequence[ChildSpec], settings: NoisySearch) -> NoiseSampling:
    """The sampling of a drawn population (its σ is the one chosen)."""
    return replace(settings.sampling, sigma=float(specs[0].sigma))
