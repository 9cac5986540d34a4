"""Configs of the tuned-children runs: ``sparse`` (Prune and Tune) and ``stochastic``.

Examples:
    >>> cfg = SparseRunConfig(model="lenet-5", children=2, partition=True)
    >>> cfg.density, cfg.child_train_config().lr      # 1/k with a partition; 3 x lr
    (0.5, 0.003)
    >>> SparseRunConfig(children=0)
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.UserError: --children must be >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

from ..checks import (
    check_fraction,
    check_nonneg_int,
    check_positive,
    check_positive_int,
    check_probability,
    partition_parts,
)
from ..errors import UserError
from ..methods.registry import title
from ..subnet import ANNEAL_SCHEDULES, ANNEALS, ChildSpec, check_dense_layers, make_child_specs
from ..subnet.masks import MASK_SCOPES, SELECTIONS
from ..train import TrainConfig
from .cli import layer_list
from .fields import option
from .shared import DataFields, EnsembleFields, ParentFields, RuntimeFields

TUNE_SCHEDULES = ("one-cycle", "constant")
# Children's peak lr is this times the parent's unless set (benchmarks/results/regime.md:
# chosen on validation from 1x and 3x).
CHILD_LR_FACTOR = 3.0
INDEPENDENT_DENSITY = 0.75  # the regime study's choice for independent masks


def _dense_layers(value: Any, flag: str) -> tuple[str, ...]:
    try:
        return check_dense_layers(value)
    except UserError as e:
        raise UserError(f"{flag}: {e}") from None


@dataclass(kw_only=True)
class SparseRunConfig(EnsembleFields, ParentFields, DataFields, RuntimeFields):
    """Settings of a ``sparse`` run; each field is one CLI flag (``--child-epochs`` …).

    The defaults are the settings the regime study chose on validation
    (benchmarks/results/regime.md): parent 8 epochs without augmentation; 4 children at
    density 0.75 (independent masks) with the first and last layers kept dense, each tuned
    3 epochs with one-cycle at 3 × the parent's lr. Values are checked when the config is
    built; an error names the flag.
    """

    children: int = option(4, "ensemble size", check=check_positive_int, group="children")
    child_epochs: int = option(
        3, "tuning epochs per child", check=check_positive_int, group="children"
    )
    child_augment: bool | None = option(
        None,
        "crop/flip augmentation while tuning children",
        bool_flag="both",
        group="children",
        default_help="as the parent's",
    )
    density: float | None = option(
        None,
        "fraction of weights each child keeps",
        check=check_fraction,
        group="children",
        default_help=f"{INDEPENDENT_DENSITY}; 1/k with --partition",
    )
    partition: bool = option(
        False,
        "neural partitioning into k disjoint subnetworks (k=2: "
        "mask/anti-mask) instead of independent random masks",
        bool_flag="both",
        group="children",
    )
    k: int = option(
        2, "partition size (2: mask/anti-mask)", check=check_positive_int, group="children"
    )
    structured: bool = option(False, "prune whole neurons/filters", group="children")
    scope: str = option(
        "local", "layerwise (local) or one global budget", choices=MASK_SCOPES, group="children"
    )
    dense_layers: tuple[str, ...] = option(
        ("first", "last"),
        "pruning scope: comma-separated layers every child never prunes "
        "(they are still tuned, like biases): first, last, name prefixes, or none",
        parse=layer_list,
        check=_dense_layers,
        metavar="LAYERS",
        group="children",
    )
    selection: str = option(
        "random",
        "which weights a child keeps: random, or the largest |W| "
        "(L1 pruning; needs --no-partition)",
        choices=SELECTIONS,
        group="children",
    )
    prune_epochs: int = option(
        0,
        "0: one-shot pruning; E_p > 0: iterative pruning, an equal "
        "share at the start of each of the first E_p epochs (sparse "
        "only, needs --no-partition)",
        check=check_nonneg_int,
        group="children",
    )
    tune: str = option(
        "one-cycle", "children's lr schedule", choices=TUNE_SCHEDULES, group="children"
    )
    child_bagging: float | None = option(
        None,
        "each child tunes on its own random fraction of train (NP + bagging, SPEC §5)",
        check=check_fraction,
        group="children",
        default_help="off: all of train",
    )
    workers: int = option(1, "tune children on N Ray workers (1: one after another in this process)",
                          check=check_positive_int, group="parallel tuning")
    ray_address: str | None = option(None, "an existing Ray cluster to tune on (with --workers)",
                                     group="parallel tuning", default_help="a local Ray started for the run")
    child_lr: float | None = option(
        None,
        "children's (peak) learning rate",
        check=check_positive,
        group="children",
        default_help=f"{CHILD_LR_FACTOR:g} x --lr",
    )

    # What a subclass changes to run another tuned-children method through the same recipe.
    METHOD: ClassVar[str] = "sparse"
    TITLE: ClassVar[str] = title("sparse")

    def resolve(self) -> None:
        super().resolve()
        self.dense_layers = tuple(self.dense_layers)
        if self.density is None:
            self.density = 1.0 / self.k if self.partition and self.k >= 2 else INDEPENDENT_DENSITY

    def check(self) -> None:
        super().check()
        if self.partition and self.k < 2:
            raise UserError(f"--k must be >= 2 for a partition, got {self.k}")
        if self.partition and partition_parts(self.density) != self.k:  # resolve() set density
            raise UserError(
                f"with --partition each child keeps 1/k of the weights: use "
                f"--density {1 / self.k:.4g} for k={self.k}, or --no-partition"
            )
        if self.prune_epochs > self.child_epochs:
            raise UserError(
                f"--prune-epochs must be in [0, --child-epochs={self.child_epochs}], "
                f"got {self.prune_epochs}"
            )
        self.parent_train_config()
        self.child_train_config()
        self.child_specs()  # descriptor-level checks (e.g. magnitude or iterative with a partition)

    def child_train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.child_epochs,
            lr=self.child_lr or CHILD_LR_FACTOR * self.lr,
            optimizer=self.optimizer,
            schedule=self.tune,
            batch_size=self.batch_size,
            seed=self.seed,
            weight_decay=self.weight_decay,
        )

    def child_specs(self) -> list[ChildSpec]:
        """The children's descriptors (a subclass adds its own through :meth:`spec_options`)."""
        return make_child_specs(
            self.children,
            cast(float, self.density),  # resolve() set it
            partition=self.partition,
            k=self.k,
            seed=self.seed,
            structured=self.structured,
            scope=self.scope,
            selection=self.selection,
            dense_layers=self.dense_layers,
            **self.spec_options(),
        )

    def spec_options(self) -> dict[str, Any]:
        """Method-specific :func:`make_child_specs` keywords (iterative pruning here)."""
        return {"prune_epochs": self.prune_epochs} if self.prune_epochs else {}

    def extra_results(self) -> dict[str, Any]:
        """Method-specific keys added to results.json (none for ``sparse``)."""
        return {}


@dataclass(kw_only=True)
class StochasticRunConfig(SparseRunConfig):
    """A :class:`SparseRunConfig` plus the annealing settings (SPEC §4).

    Children are ``kind="stochastic"`` descriptors: during the first ``anneal_epochs`` of
    tuning each forward pass uses ``W ∘ Bernoulli(P)``, ``P`` annealed to the child's target
    mask; the rest of the tuning is ordinary Prune-and-Tune.
    """

    anneal: str = option(
        "temperature",
        "temperature: pruned weights start at probability T0; "
        "random: P ~ U[0,1] (P and 1-P across a partition); mog: "
        "mixture-of-Gaussians P",
        choices=ANNEALS,
        group="annealing",
    )
    t0: float = option(
        0.5,
        "start probability of pruned weights, in [0, 1]",
        check=check_probability,
        group="annealing",
    )
    anneal_epochs: int = option(
        1,
        "epochs E_a over which P anneals, <= --child-epochs",
        check=check_positive_int,
        group="annealing",
    )
    anneal_schedule: str = option(
        "cosine",
        "annealing schedule, stepped per batch",
        flag="--schedule",
        choices=ANNEAL_SCHEDULES,
        group="annealing",
    )

    METHOD: ClassVar[str] = "stochastic"
    TITLE: ClassVar[str] = title("stochastic")

    def check(self) -> None:
        if self.anneal_epochs > self.child_epochs:
            raise UserError(
                f"--anneal-epochs ({self.anneal_epochs}) must not exceed "
                f"--child-epochs ({self.child_epochs}): annealing ends inside tuning"
            )
        if self.structured and self.anneal in ("random", "mog"):
            raise UserError(
                f"--anneal {self.anneal} draws one probability per weight; drop --structured"
            )
        super().check()

    def spec_options(self) -> dict[str, Any]:
        return {
            "kind": "stochastic",
            "anneal": self.anneal,
            "t0": self.t0,
            "anneal_epochs": self.anneal_epochs,
            "anneal_schedule": self.anneal_schedule,
        }

    def extra_results(self) -> dict[str, Any]:
        return {
            "annealing": {
                "anneal": self.anneal,
                "t0": self.t0,
                "anneal_epochs": self.anneal_epochs,
                "schedule": self.anneal_schedule,
            }
        }


__all__ = [
    "CHILD_LR_FACTOR",
    "INDEPENDENT_DENSITY",
    "TUNE_SCHEDULES",
    "SparseRunConfig",
    "StochasticRunConfig",
]
