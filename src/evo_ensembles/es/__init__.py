"""The evolution-strategy engine: populations of seed-encoded noisy children (SPEC §2).

``population`` (mirrored + partitioned sampling) → ``evaluate`` (in place, constant memory)
→ ``engine`` (ask/tell, top-K) with ``trust_region`` choosing σ, and ``evotorch_bridge``
for Ray actors and continued evolution (PGPE/SNES). ``evotorch_bridge`` imports EvoTorch
(and Ray) only when used.
"""

from .engine import Candidate, ESState, SubnetworkES
from .evaluate import evaluate_children, top_k
from .fitness import FITNESS_METRICS, ClassifierFitness, Fitness
from .population import ALGORITHMS, NoiseSampling, draws_needed, make_noisy_specs
from .select import NoisySearch, Selection, select_children
from .trust_region import (
    DEFAULT_DENSITIES,
    DEFAULT_SIGMAS,
    SEARCH_MODES,
    TrustRegion,
    bisect_sigma,
    kl_grid,
    search_sigma,
    sigma_for_target,
)

_LAZY = {"DescriptorProblem", "SubnetVectorProblem", "EvolveResult", "evolve", "evaluate_population",
         "encode_specs", "decode_spec"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import evotorch_bridge

        return getattr(evotorch_bridge, name)
    raise AttributeError(name)


__all__ = [
    "ALGORITHMS",
    "DEFAULT_DENSITIES",
    "DEFAULT_SIGMAS",
    "FITNESS_METRICS",
    "SEARCH_MODES",
    "Candidate",
    "ClassifierFitness",
    "DescriptorProblem",
    "ESState",
    "EvolveResult",
    "Fitness",
    "NoiseSampling",
    "NoisySearch",
    "Selection",
    "SubnetVectorProblem",
    "SubnetworkES",
    "TrustRegion",
    "bisect_sigma",
    "decode_spec",
    "draws_needed",
    "encode_specs",
    "evaluate_children",
    "evaluate_population",
    "evolve",
    "kl_grid",
    "make_noisy_specs",
    "search_sigma",
    "select_children",
    "sigma_for_target",
    "top_k",
]
