"""Choosing a Noisy Subnetwork Ensemble: σ search → ask → evaluate → tell, written once.

Classifiers (:func:`evo_ensembles.noisy_ensemble`) and PPO policies (``rl evaluate``) differ
only in their probe (the KL reference: class or action distributions) and their fitness
(validation accuracy/NLL, or mean return over validation episodes); both go through
:func:`select_children` with a :class:`NoisySearch` holding the settings.

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles.es import ClassifierFitness, NoiseSampling
    >>> from evo_ensembles.subnet import InPlacePerturber
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> search = NoisySearch(NoiseSampling(sigma=0.0, density=0.5), sigma=0.05, popsize=8, top_k=4)
    >>> sel = select_children(InPlacePerturber(net), None, ClassifierFitness(x, y, reference=net),
    ...                       search, seed=0, progress=False)
    >>> len(sel.members), sel.sigma
    (4, 0.05)
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..checks import check_choice, check_nonneg, check_positive, check_positive_int, check_top_k
from ..errors import UserError
from ..subnet import ChildSpec, InPlacePerturber
from .engine import SubnetworkES
from .evaluate import evaluate_children
from .population import NoiseSampling
from .trust_region import DEFAULT_DENSITIES, DEFAULT_SIGMAS, SEARCH_MODES, TrustRegion, search_sigma


@dataclass(frozen=True)
class NoisySearch:
    """How a noisy ensemble is chosen.

    Attributes:
        sampling: how children are drawn (its ``sigma`` is replaced by the one chosen).
        sigma: a fixed noise scale; ``None`` searches it by the KL trust region.
        target_kl, search, sigmas, densities, probe_children: the trust-region search
            (``densities`` always includes ``sampling.density``).
        popsize, top_k: N candidates scored, K kept.
    """

    sampling: NoiseSampling = field(default_factory=lambda: NoiseSampling(sigma=0.0))
    sigma: float | None = None
    target_kl: float = 0.02
    search: str = "grid"
    sigmas: tuple[float, ...] = tuple(DEFAULT_SIGMAS)
    densities: tuple[float, ...] = tuple(DEFAULT_DENSITIES)
    probe_children: int = 4
    popsize: int = 16
    top_k: int = 8

    def __post_init__(self) -> None:
        if self.sigma is not None:
            check_nonneg(self.sigma, "sigma")
        check_positive(self.target_kl, "the target KL")
        check_choice(self.search, SEARCH_MODES, "search")
        check_positive_int(self.probe_children, "probe children")
        check_positive_int(self.popsize, "the population size")
        check_top_k(self.top_k, self.popsize)

    @classmethod
    def from_kwargs(cls, **kw: Any) -> NoisySearch:
        """Settings from flat keywords: :class:`NoiseSampling` fields and this class's own."""
        mine = {f.name for f in fields(cls)} - {"sampling"}
        sampling_kw = {k: v for k, v in kw.items() if k not in mine}
        unknown = set(sampling_kw) - {f.name for f in fields(NoiseSampling)} - {"sigma"}
        if unknown:
            raise UserError(f"unknown noisy-ensemble settings: {sorted(unknown)}")
        sampling_kw.pop("sigma", None)
        return cls(sampling=NoiseSampling(sigma=0.0, **sampling_kw), **{k: v for k, v in kw.items() if k in mine})


@dataclass
class Selection:
    """What :func:`select_children` found."""

    sigma: float
    trust_region: TrustRegion | None
    population: list[ChildSpec]
    records: list[dict] | None  # None: N = K and no fitness, nothing was scored
    selected: list[int]
    history: list[dict] = field(default_factory=list)

    @property
    def members(self) -> list[ChildSpec]:
        return [self.population[i] for i in self.selected]


def select_children(
    perturber: InPlacePerturber,
    probe: Callable | None,
    fitness: Callable | None,
    search: NoisySearch,
    *,
    seed: int = 0,
    progress: bool = True,
    evaluate: Callable[[Sequence[ChildSpec]], list[dict]] | None = None,
    cache: MutableMapping[str, dict] | None = None,
) -> Selection:
    """Choose σ (unless fixed), draw ``popsize`` children, score them, keep the top K.

    ``probe`` measures KL for the σ search (needed when ``search.sigma`` is None);
    ``fitness`` scores a child perturbed in place (``None`` with N = K keeps all, unscored);
    ``evaluate`` replaces in-place scoring (e.g. Ray actors through EvoTorch). A ``cache``
    (e.g. :class:`~evo_ensembles.train.checkpoint.RecordCache`) keeps every finished grid cell
    and child record, so an interrupted selection resumes without redoing them.
    """
    sigma, trust = search.sigma, None
    if sigma is None:
        if probe is None:
            raise UserError("searching σ needs a probe; or give a fixed sigma")
        trust = search_sigma(perturber, probe, target=search.target_kl, density=search.sampling.density,
                             densities=search.densities, sigmas=search.sigmas, mode=search.search,
                             children=search.probe_children, seed=seed, sampling=search.sampling,
                             progress=progress, cache=cache)
        sigma = trust.sigma
    es = SubnetworkES(search.popsize, search.top_k, sampling=replace(search.sampling, sigma=float(sigma)))
    state = es.init(seed)
    specs, state = es.ask(state)
    if fitness is None and evaluate is None:
        if search.popsize != search.top_k:
            raise UserError("keeping the top K of N children needs a fitness")
        return Selection(float(sigma), trust, specs, None, list(range(len(specs))))
    if evaluate is not None:
        records = evaluate(specs)
    else:
        assert fitness is not None  # no fitness and no evaluate returned above
        records = evaluate_children(perturber.model, specs, fitness, perturber=perturber, progress=progress,
                                    desc="population", cache=cache)
    state = es.tell(state, specs, records)
    return Selection(float(sigma), trust, specs, records, [c.index for c in state.best], list(state.history))


__all__ = ["NoisySearch", "Selection", "select_children"]
