"""The evolution-strategy engine for noisy subnetwork children: init → ask → tell.

Modelled on evosax's engines (fixed settings in the constructor, an explicit immutable
state, randomness only from the state's seed). Around a fixed parent every ``ask`` returns
the next ``popsize`` children of the seeded stream (mirrored and partitioned, SPEC §2), and
``tell`` keeps the ``top_k`` fittest seen so far — the paper's "generate N candidates,
evaluate on validation, keep the top K". Children are descriptors; evaluation is up to the
caller (:func:`~evo_ensembles.es.evaluate_children` in process, or
:class:`~evo_ensembles.es.DescriptorProblem` on Ray actors).

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles.es import ClassifierFitness, evaluate_children
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> es = SubnetworkES(popsize=8, top_k=2, sampling=NoiseSampling(sigma=0.05))
    >>> state = es.init(seed=0)
    >>> specs, state = es.ask(state)
    >>> state = es.tell(state, specs, evaluate_children(net, specs, ClassifierFitness(x, y), progress=False))
    >>> len(state.best), state.generation
    (2, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..checks import check_positive_int, check_top_k
from ..errors import UserError
from ..subnet import ChildSpec
from .evaluate import top_k
from .population import NoiseSampling, draws_needed, make_noisy_specs


@dataclass(frozen=True)
class Candidate:
    """An evaluated child: its descriptor, its fitness record and where it came from."""

    spec: ChildSpec
    record: dict
    generation: int
    index: int

    @property
    def fitness(self) -> float:
        return float(self.record["fitness"])


@dataclass(frozen=True)
class ESState:
    """Everything that changes between generations (immutable; ``tell`` returns a new one)."""

    seed: int
    generation: int = 0
    next_draw: int = 0
    best: tuple[Candidate, ...] = ()
    history: tuple[dict, ...] = field(default=())


class SubnetworkES:
    """Ask/tell over seed-encoded noisy children of one parent.

    Args:
        popsize: children per ``ask`` (N; paper default 16).
        top_k: children kept (K ≤ N; paper default 8).
        sampling: σ, density, mirrored/partitioned, structured, scope, μ.
    """

    def __init__(self, popsize: int = 16, top_k: int = 8, *, sampling: NoiseSampling) -> None:
        check_positive_int(popsize, "population size")
        check_top_k(top_k, popsize)
        self.popsize, self.top_k, self.sampling = popsize, top_k, sampling

    def init(self, seed: int) -> ESState:
        return ESState(seed=int(seed))

    def ask(self, state: ESState) -> tuple[list[ChildSpec], ESState]:
        """The next ``popsize`` children; the returned state will not hand them out again."""
        specs = make_noisy_specs(self.popsize, seed=state.seed, sampling=self.sampling,
                                 first_draw=state.next_draw)
        nxt = state.next_draw + draws_needed(self.popsize, self.sampling)
        return specs, ESState(state.seed, state.generation, nxt, state.best, state.history)

    def tell(self, state: ESState, specs: Sequence[ChildSpec], records: Sequence[dict]) -> ESState:
        """Merge evaluated children into the best-so-far and advance the generation."""
        if len(specs) != len(records):
            raise UserError(f"{len(specs)} children but {len(records)} fitness records")
        new = [Candidate(s, dict(r), state.generation, i) for i, (s, r) in enumerate(zip(specs, records))]
        pool = list(state.best) + new
        keep = top_k([c.record for c in pool], min(self.top_k, len(pool)))
        fits = [c.fitness for c in new]
        summary = {"generation": state.generation, "n": len(new), "best": max(fits),
                   "mean": sum(fits) / len(fits), "worst": min(fits)}
        return ESState(state.seed, state.generation + 1, state.next_draw,
                       tuple(pool[i] for i in keep), state.history + (summary,))
