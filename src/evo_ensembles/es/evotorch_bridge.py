"""The bridge to EvoTorch: populations as ``Problem`` objects, evaluation on Ray actors,
and continued evolution from the parent with PGPE or SNES.

Two problems:

* :class:`DescriptorProblem` — a solution is a *descriptor row*
  ``(mask_seed, noise_seed, part, sign, sigma)`` (float64, exact for the 53-bit seeds).
  The parent and the fitness data travel to each Ray actor once, when the actors start;
  afterwards only these five numbers per child travel, and each actor rebuilds its children
  in place (perturb, score, revert). This is how a noisy population is evaluated with
  ``num_actors >= 2``.
* :class:`SubnetVectorProblem` — a solution is the vector of values of a fixed random
  subnetwork of the parent (``density`` of the eligible weights; 1.0 = all), for
  EvoTorch's distribution-based algorithms. :func:`evolve` starts PGPE or SNES with the
  centre *at the parent* (EvoTorch issue #118) and σ from the trust region, runs several
  generations, and returns the top children of the last one. Those children are dense
  vectors, not seeds (EvoTorch samples them from its own generator), so they are saved
  as value tensors.

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles.es import ClassifierFitness, NoiseSampling, make_noisy_specs
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> problem = DescriptorProblem(net, ClassifierFitness(x, y, reference=net),
    ...                             sampling=NoiseSampling(sigma=0.05))
    >>> recs = evaluate_population(problem, make_noisy_specs(4, seed=0, sigma=0.05))
    >>> len(recs)
    4
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_known, check_positive_int, check_top_k
from ..errors import UserError
from ..subnet import ChildSpec, InPlacePerturber
from .evaluate import evaluate_children
from .evaluate import top_k as _top_k
from .fitness import Fitness
from .population import ALGORITHMS, NoiseSampling

if TYPE_CHECKING:
    from evotorch import Problem as _EvotorchProblem  # untyped: Any to mypy

_FIELDS = ("mask_seed", "noise_seed", "part", "sign", "sigma")


def _evotorch():
    try:
        with warnings.catch_warnings():  # EvoTorch decorates with torch.jit.script (deprecated)
            warnings.simplefilter("ignore", FutureWarning)
            import evotorch
    except ImportError as e:  # pragma: no cover - evotorch is a declared dependency
        raise UserError("this feature needs EvoTorch: pip install evotorch") from e
    # EvoTorch logs every Problem's device and actor count at INFO; keep the CLI readable.
    logging.getLogger("evotorch").setLevel(max(logging.getLogger("evotorch").level, logging.WARNING))
    return evotorch


def encode_specs(specs: Sequence[ChildSpec]) -> torch.Tensor:
    """(n, 5) float64 rows: mask_seed, noise_seed, part, sign, sigma (seeds < 2**53: exact)."""
    # noisy children always carry a noise seed
    rows = [[float(s.mask_seed), float(cast(int, s.noise_seed)), float(s.part), float(s.sign), float(s.sigma)]
            for s in specs]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(_FIELDS))


def decode_spec(row: torch.Tensor, sampling: NoiseSampling) -> ChildSpec:
    """The child a descriptor row stands for, given the problem's fixed sampling settings."""
    mask_seed, noise_seed, part, sign, sigma = (float(v) for v in row.tolist())
    return sampling.child(int(mask_seed), int(noise_seed), part=int(part), sign=int(sign), sigma=sigma)


def _ensure_ray(num_actors: int) -> None:
    """Start Ray quietly (no dashboard, actor logs not echoed) unless the user already did."""
    if num_actors < 2:
        return
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=True,
                 logging_level=logging.WARNING)


def _record_keys(fitness: Fitness) -> tuple[str, ...]:
    return tuple(getattr(fitness, "extra_keys", ()))


class _ModelProblemMixin:
    """Shared set-up: a parent model and a fitness that each actor keeps a copy of."""

    # set by the subclasses / provided by EvoTorch's Problem, which the subclasses also derive from
    _remote_capable: bool
    is_remote: bool

    def _setup(self, model: nn.Module, fitness: Fitness, threads_per_actor: int,
               eligibility: dict | None) -> None:
        self.model = model.cpu() if self._remote_capable else model
        self.fitness = fitness
        self.threads_per_actor = threads_per_actor
        self.eligibility = dict(eligibility or {})
        self.record_keys = _record_keys(fitness)
        self._perturber: InPlacePerturber | None = None

    @property
    def _nonserialized_attribs(self) -> list[str]:
        return cast(Any, super())._nonserialized_attribs + ["_perturber"]  # Problem's, next in the MRO

    def _prepare(self) -> None:
        if self.is_remote:  # actors share the machine's cores; one thread each by default
            torch.set_num_threads(self.threads_per_actor)
        self._perturber = InPlacePerturber(self.model, **self.eligibility)

    def _store(self, batch, records: list[dict]) -> None:
        evals = torch.tensor([[float(r["fitness"])] + [float(r.get(k, math.nan)) for k in self.record_keys]
                              for r in records], dtype=torch.float64)
        batch.set_evals(evals[:, :1], evals[:, 1:] if self.record_keys else None)


def _problem_base():
    return _evotorch().Problem


if not TYPE_CHECKING:
    _EvotorchProblem = _problem_base()


class DescriptorProblem(_ModelProblemMixin, _EvotorchProblem):
    """A population of noisy children of ``model`` as an EvoTorch problem (maximise fitness).

    Args:
        model: the parent (moved to CPU when ``num_actors >= 2``).
        fitness: ``fitness(model) -> dict`` with ``"fitness"``; its ``extra_keys`` (if any)
            come back as evaluation data.
        sampling: the fixed settings (density, partition k, structured, scope, μ) that turn
            a descriptor row into a child.
        num_actors: Ray actors for evaluation (0 or 1: in this process).
        threads_per_actor: torch threads in each actor.
        eligibility: ``eligible_parameters`` options (include_bias, include_norm, exclude).
    """

    _remote_capable = False

    def __init__(self, model: nn.Module, fitness: Fitness, *, sampling: NoiseSampling,
                 num_actors: int = 0, threads_per_actor: int = 1, eligibility: dict | None = None,
                 progress: bool = False) -> None:
        self._remote_capable = num_actors >= 2
        _ensure_ray(num_actors)
        keys = _record_keys(fitness)
        super().__init__("max", solution_length=len(_FIELDS), dtype=torch.float64,
                         eval_data_length=len(keys) or None, num_actors=num_actors or None,
                         actor_config={"num_cpus": 1} if num_actors >= 2 else None)
        self._setup(model, fitness, threads_per_actor, eligibility)
        self.sampling = sampling
        self.progress = progress

    def _evaluate_batch(self, batch) -> None:
        specs = [decode_spec(row, self.sampling) for row in batch.values]
        records = evaluate_children(self.model, specs, self.fitness, perturber=self._perturber,
                                    progress=self.progress and not self.is_remote)
        self._store(batch, records)


def _records(problem, evals: torch.Tensor) -> list[dict]:
    """One record per solution: its fitness and the problem's extra values."""
    return [{"fitness": row[0], **dict(zip(problem.record_keys, row[1:]))} for row in evals.cpu().tolist()]


def evaluate_population(problem: DescriptorProblem, specs: Sequence[ChildSpec]) -> list[dict]:
    """Evaluate children through the problem (on its actors if it has them); records in order."""
    evotorch = _evotorch()
    batch = evotorch.SolutionBatch(problem, popsize=len(specs), empty=True)
    batch.set_values(encode_specs(specs))
    problem.evaluate(batch)
    return _records(problem, batch.evals)


class SubnetVectorProblem(_ModelProblemMixin, _EvotorchProblem):
    """Solutions are the values of a fixed random subnetwork of ``model`` (maximise fitness).

    ``density`` and ``mask_seed`` choose which eligible weights are searched; the rest stay
    at the parent's values, as do all of the tensors ``dense_layers`` names (the pruning
    scope of :class:`~evo_ensembles.subnet.ChildSpec`). :meth:`parent_vector` is the
    parent's point in this space.
    """

    _remote_capable = False

    def __init__(self, model: nn.Module, fitness: Fitness, *, density: float = 1.0, mask_seed: int = 0,
                 num_actors: int = 0, threads_per_actor: int = 1, eligibility: dict | None = None,
                 dense_layers: Sequence[str] = ()) -> None:
        self._remote_capable = num_actors >= 2
        _ensure_ray(num_actors)
        self.density, self.mask_seed = float(density), int(mask_seed)
        self.dense_layers = tuple(dense_layers)
        perturber = InPlacePerturber(model, **dict(eligibility or {}))
        self.index = self._indices(perturber.params)
        length = sum(int(i.numel()) for i in self.index.values())
        keys = _record_keys(fitness)
        super().__init__("max", solution_length=length, dtype=torch.float32,
                         eval_data_length=len(keys) or None, num_actors=num_actors or None,
                         actor_config={"num_cpus": 1} if num_actors >= 2 else None)
        self._setup(model, fitness, threads_per_actor, eligibility)

    def _indices(self, params) -> dict[str, torch.Tensor]:
        if self.density >= 1.0 and not self.dense_layers:
            return {n: torch.arange(p.numel()) for n, p in params.items()}
        # The same (layerwise, random) mask a noisy child of this seed and scope perturbs.
        mask = ChildSpec("noise", mask_seed=self.mask_seed, density=min(self.density, 1.0),
                         dense_layers=self.dense_layers).mask(params)
        return {n: m.reshape(-1).nonzero().squeeze(1).cpu() for n, m in mask.items()}

    def parent_vector(self) -> torch.Tensor:
        params = InPlacePerturber(self.model, **self.eligibility).params
        return torch.cat([params[n].detach().reshape(-1)[i].float().cpu() for n, i in self.index.items()])

    @torch.no_grad()
    def write(self, vector: torch.Tensor) -> None:
        """Put ``vector`` into the model's subnetwork (in place)."""
        assert self._perturber is not None, "the problem is not prepared (EvoTorch calls _prepare first)"
        params, start = self._perturber.params, 0
        for n, idx in self.index.items():
            p = params[n]
            p.view(-1)[idx.to(p.device)] = vector[start:start + idx.numel()].to(p.device, p.dtype)
            start += idx.numel()

    def _evaluate_batch(self, batch) -> None:
        records = []
        assert self._perturber is not None  # evaluate() runs _prepare() first
        for row in batch.values:
            try:
                self.write(row)
                records.append(self.fitness(self.model))
            finally:
                self._perturber.restore()
        self._store(batch, records)


@dataclass
class EvolveResult:
    """Outcome of :func:`evolve`: the last generation's top children as subnetwork vectors."""

    algorithm: str
    problem: SubnetVectorProblem
    vectors: torch.Tensor  # (top_k, L)
    records: list[dict]
    centre: torch.Tensor
    history: list[dict] = field(default_factory=list)

    def child(self, i: int) -> nn.Module:
        """Child ``i`` as a standalone model (a copy of the parent with its vector written in)."""
        import copy

        model = copy.deepcopy(self.problem.model)
        perturber = InPlacePerturber(model, **self.problem.eligibility)
        prob = self.problem
        prob_perturber, prob._perturber = prob._perturber, perturber
        try:
            with torch.no_grad():
                start = 0
                for n, idx in prob.index.items():
                    p = perturber.params[n]
                    p.view(-1)[idx.to(p.device)] = self.vectors[i, start:start + idx.numel()].to(p.device, p.dtype)
                    start += idx.numel()
        finally:
            prob._perturber = prob_perturber
        return model


def evolve(
    model: nn.Module,
    fitness: Fitness,
    *,
    algorithm: str = "pgpe",
    generations: int = 5,
    popsize: int = 16,
    top_k: int = 8,
    sigma: float,
    density: float = 1.0,
    seed: int = 0,
    num_actors: int = 0,
    center_learning_rate: float | None = None,
    eligibility: dict | None = None,
    dense_layers: Sequence[str] = (),
    progress: bool = True,
) -> EvolveResult:
    """Evolve from the parent with EvoTorch's PGPE or SNES; return the last generation's top K.

    The search distribution starts centred at the parent with standard deviation ``sigma``
    over a random subnetwork of ``density`` (``dense_layers`` stay the parent's). PGPE uses ClipUp
    with a centre step of σ/2 by default (max speed σ), symmetric (mirrored) sampling and centred
    ranks; SNES uses its default natural-gradient rates. ``generations`` counts evaluated populations.
    """
    _evotorch()
    from evotorch.algorithms import PGPE, SNES

    check_known(algorithm, ALGORITHMS, "algorithm")
    check_positive_int(generations, "generations")
    check_top_k(top_k, popsize)
    if not sigma > 0:
        raise UserError(f"sigma must be > 0 to evolve, got {sigma}")
    if algorithm == "pgpe" and popsize % 2:
        raise UserError("PGPE samples mirrored pairs: use an even population size")
    torch.manual_seed(seed)  # EvoTorch samples from torch's global generator
    problem = SubnetVectorProblem(model, fitness, density=density, mask_seed=seed, num_actors=num_actors,
                                  eligibility=eligibility, dense_layers=dense_layers)
    centre = problem.parent_vector()
    if algorithm == "pgpe":
        lr = center_learning_rate or sigma / 2
        searcher = PGPE(problem, popsize=popsize, center_learning_rate=lr, stdev_learning_rate=0.1,
                        stdev_init=sigma, center_init=centre, optimizer="clipup",
                        optimizer_config={"max_speed": 2 * lr}, ranking_method="centered", symmetric=True)
    else:
        searcher = SNES(problem, popsize=popsize, stdev_init=sigma, center_init=centre)
    history = []
    for g in tqdm(range(generations), desc=f"evolve ({algorithm})", disable=not progress, leave=False):
        searcher.step()
        ev = searcher.population.evals[:, 0].cpu()
        history.append({"generation": g, "best": float(ev.max()), "mean": float(ev.mean()),
                        "worst": float(ev.min())})
    pop = searcher.population
    records = _records(problem, pop.evals)
    best = _top_k(records, top_k)
    vectors = pop.values[torch.tensor(best)].detach().cpu().clone()
    final_centre = searcher.status["center"].detach().cpu().clone()
    if num_actors >= 2:
        problem.kill_actors()
    return EvolveResult(algorithm, problem, vectors, [records[i] for i in best], final_centre,
                        history)
