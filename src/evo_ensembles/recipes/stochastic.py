"""The ``stochastic`` run: the ``sparse`` pipeline with children tuned by annealed masks.

Same flags, outputs and results.json keys as ``sparse`` (it *is* :func:`run_sparse` with
another child builder), plus an ``"annealing"`` entry holding the annealing settings.
Children are ``kind="stochastic"`` descriptors: during the first ``anneal_epochs`` of
tuning each forward pass uses ``W ∘ Bernoulli(P)``, ``P`` annealed to the child's target
mask; the rest of the tuning is ordinary Prune-and-Tune.

Example:
    >>> from evo_ensembles.recipes.stochastic import StochasticRunConfig
    >>> from evo_ensembles.recipes.sparse import run_sparse
    >>> cfg = StochasticRunConfig(model="lenet-5", parent_epochs=1, child_epochs=2,
    ...                           anneal="temperature", t0=0.5, anneal_epochs=1, subset=512)
    >>> results = run_sparse(cfg, "runs/demo-stochastic", progress=False)   # doctest: +SKIP
    >>> results["annealing"]["t0"]                                          # doctest: +SKIP
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import UserError
from ..subnet import ANNEAL_SCHEDULES, ANNEALS, ChildSpec, make_child_specs
from .sparse import SparseRunConfig, print_summary, run_sparse


@dataclass
class StochasticRunConfig(SparseRunConfig):
    """A :class:`SparseRunConfig` plus the annealing settings (SPEC §4).

    Attributes:
        anneal: ``temperature`` (binary target; pruned entries start at ``t0``),
            ``temperature-symmetric`` (kept entries also start at ``1 − t0``), ``random``
            (P ~ U[0,1], partitioned P / 1 − P with ``partition``) or ``mog``.
        t0: start temperature in [0, 1] (temperature annealing).
        anneal_epochs: E_a >= 1 epochs of annealing, at most ``child_epochs``.
        anneal_schedule: ``linear``, ``cosine`` (paper default) or ``exp``.
    """

    anneal: str = "temperature"
    t0: float = 0.5
    anneal_epochs: int = 1
    anneal_schedule: str = "cosine"

    METHOD: ClassVar[str] = "stochastic"
    TITLE: ClassVar[str] = "Stochastic Subnetwork Ensemble"

    def validate(self) -> None:
        """The ``sparse`` checks, then the annealing ones (before any file is made)."""
        super().validate()
        if self.anneal not in ANNEALS:
            raise UserError(f"--anneal must be one of {ANNEALS}, got {self.anneal!r}")
        if not 0.0 <= self.t0 <= 1.0:
            raise UserError(f"--t0 must be in [0, 1], got {self.t0}")
        if self.anneal_epochs < 1:
            raise UserError(f"--anneal-epochs must be >= 1, got {self.anneal_epochs}")
        if self.anneal_epochs > self.child_epochs:
            raise UserError(
                f"--anneal-epochs ({self.anneal_epochs}) must not exceed "
                f"--child-epochs ({self.child_epochs}): annealing ends inside tuning"
            )
        if self.anneal_schedule not in ANNEAL_SCHEDULES:
            raise UserError(
                f"--schedule must be one of {ANNEAL_SCHEDULES}, got {self.anneal_schedule!r}"
            )
        if self.structured and self.anneal in ("random", "mog"):
            raise UserError(
                f"--anneal {self.anneal} draws one probability per weight; drop --structured"
            )
        self.child_specs()

    def child_specs(self) -> list[ChildSpec]:
        return make_child_specs(
            self.children,
            self.density,
            partition=self.partition,
            k=self.k,
            seed=self.seed,
            structured=self.structured,
            scope=self.scope,
            selection=self.selection,
            dense_layers=tuple(self.dense_layers),
            kind="stochastic",
            anneal=self.anneal,
            t0=self.t0,
            anneal_epochs=self.anneal_epochs,
            anneal_schedule=self.anneal_schedule,
        )

    def extra_results(self) -> dict[str, Any]:
        return {
            "annealing": {
                "anneal": self.anneal,
                "t0": self.t0,
                "anneal_epochs": self.anneal_epochs,
                "schedule": self.anneal_schedule,
            }
        }


def run_stochastic(cfg: StochasticRunConfig, out, *, progress: bool = True) -> dict[str, Any]:
    """Run the Stochastic Subnetwork Ensemble pipeline (see :func:`run_sparse`)."""
    return run_sparse(cfg, out, progress=progress)


__all__ = ["StochasticRunConfig", "print_summary", "run_stochastic"]
