"""The ``stochastic`` run: the ``sparse`` pipeline with children tuned by annealed masks.

Same flags, outputs and results.json keys as ``sparse`` (it *is* :func:`run_sparse` with
another child builder), plus an ``"annealing"`` entry holding the annealing settings.
Children are ``kind="stochastic"`` descriptors: during the first ``anneal_epochs`` of
tuning each forward pass uses ``W ∘ Bernoulli(P)``, ``P`` annealed to the child's target
mask; the rest of the tuning is ordinary Prune-and-Tune.

Examples:
    >>> from evo_ensembles.recipes.stochastic import StochasticRunConfig
    >>> from evo_ensembles.recipes.sparse import run_sparse
    >>> cfg = StochasticRunConfig(model="lenet-5", parent_epochs=1, child_epochs=2,
    ...                           anneal="temperature", t0=0.5, anneal_epochs=1, subset=512)
    >>> results = run_sparse(cfg, "runs/demo-stochastic", progress=False)   # doctest: +SKIP
    >>> results["annealing"]["t0"]                                          # doctest: +SKIP
    0.5
"""

from __future__ import annotations

from typing import Any

from ..config.sparse import StochasticRunConfig
from .sparse import print_summary, run_sparse


def run_stochastic(cfg: StochasticRunConfig, out, *, progress: bool = True) -> dict[str, Any]:
    """Run the Stochastic Subnetwork Ensemble pipeline (see :func:`run_sparse`)."""
    return run_sparse(cfg, out, progress=progress)


__all__ = ["StochasticRunConfig", "print_summary", "run_stochastic"]
