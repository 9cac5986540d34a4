"""Config of the ``noisy`` run (Noisy Subnetwork Ensembles: no training of children).

Examples:
    >>> cfg = NoisyRunConfig(population=8, top_k=4)
    >>> cfg.sampling(0.01).group_size        # mirrored x partitioned pairs
    4
    >>> NoisyRunConfig(population=4, top_k=8)
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.UserError: --top-k must be between 1 and --population (4), got 8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from ..checks import (
    check_finite,
    check_fraction,
    check_nonneg,
    check_nonneg_int,
    check_positive,
    check_positive_int,
    check_top_k,
)
from ..errors import UserError
from ..es import (
    ALGORITHMS,
    DEFAULT_DENSITIES,
    FITNESS_METRICS,
    SEARCH_MODES,
    NoiseSampling,
    NoisySearch,
)
from ..subnet.masks import MASK_SCOPES
from .cli import layer_list
from .fields import RunConfig, option
from .shared import DataFields, EnsembleFields, ParentFields, RuntimeFields
from .sparse import _dense_layers


def sigma_or_auto(text: str) -> float | None:
    """``--sigma`` syntax: a number, or ``auto`` for the KL trust region (``None``)."""
    import argparse

    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


@dataclass(kw_only=True)
class NoiseSelectionFields(RunConfig):
    """What every noisy ensemble sets, with the same flags (classifiers, ImageNet, RL policies):
    σ or the KL trust region that picks it, the share of weights perturbed, mirroring, N and K."""

    target_kl: float = option(
        0.02, "mean KL(parent || child) to aim for", check=check_positive, group="trust region"
    )
    sigma: float | None = option(
        None,
        "noise standard deviation (skips the trust-region search), or auto: search at --target-kl",
        check=check_nonneg,
        parse=sigma_or_auto,
        nullable=True,
        metavar="SIGMA|auto",
        group="trust region",
        default_help="auto",
    )
    density: float = option(
        0.5,
        "fraction of weights perturbed (1/k when partitioned)",
        check=check_fraction,
        group="children",
    )
    mirrored: bool = option(True, "no −N children", bool_flag="--no-mirror", group="children")
    population: int | None = option(16, "N candidates", check=check_positive_int, group="children")
    top_k: int = option(8, "K kept", check=check_positive_int, group="children")

    def check(self) -> None:
        super().check()
        check_top_k(self.top_k, self.population, "--top-k", "--population")


@dataclass(kw_only=True)
class NoisySearchFields(NoiseSelectionFields):
    """How noisy children of a classifier are drawn and chosen: the trust region's search, the
    sampling's scope, and the fitness (shared by the ``noisy`` and ``imagenet`` runs)."""

    search: str = option(
        "grid",
        "σ × density grid with interpolation, or bisection",
        choices=SEARCH_MODES,
        group="trust region",
    )
    probe_size: int = option(
        1000,
        "validation examples used as the KL probe set",
        check=check_positive_int,
        group="trust region",
    )
    probe_children: int = option(
        4, "children averaged per grid cell", check=check_positive_int, group="trust region"
    )
    partitioned: bool = option(
        True,
        "no anti-mask children (any density allowed)",
        bool_flag="--no-partition",
        group="children",
    )
    structured: bool = option(False, "perturb whole neurons/filters", group="children")
    scope: str = option(
        "local",
        "layerwise (local) or one global budget (needs --no-partition)",
        choices=MASK_SCOPES,
        group="children",
    )
    mu: float = option(0.0, "noise mean μ", check=check_finite, group="children")
    dense_layers: tuple[str, ...] = option(
        (),
        "pruning scope: comma-separated layers every child leaves exactly as the parent's "
        "(also in the σ search and evolution): first, last, name prefixes, or none",
        parse=layer_list,
        check=_dense_layers,
        metavar="LAYERS",
        group="children",
    )
    fitness: str = option(
        "accuracy", "validation fitness for selection", choices=FITNESS_METRICS, group="children"
    )

    def resolve(self) -> None:
        super().resolve()
        self.dense_layers = tuple(self.dense_layers)

    def check(self) -> None:
        super().check()
        self.search_settings()  # partition/density consistency

    def search_densities(self) -> tuple[float, ...]:
        """Densities of the σ × density grid (always including ``density``)."""
        return tuple(sorted({self.density, *DEFAULT_DENSITIES}))

    def search_settings(self) -> NoisySearch:
        """How children are drawn and chosen (σ search, population, K)."""
        return NoisySearch(sampling=self.sampling(0.0), sigma=self.sigma, target_kl=self.target_kl,
                           search=self.search, densities=self.search_densities(),
                           probe_children=self.probe_children, popsize=cast(int, self.population), top_k=self.top_k,
                           **self.extra_search())

    def extra_search(self) -> dict:
        """Further :class:`NoisySearch` settings a run fixes (e.g. its σ grid)."""
        return {}

    def sampling(self, sigma: float) -> NoiseSampling:
        """How children are drawn, at noise scale ``sigma``."""
        return NoiseSampling(
            sigma=sigma,
            density=self.density,
            mirrored=self.mirrored,
            partitioned=self.partitioned,
            structured=self.structured,
            scope=self.scope,
            mu=self.mu,
            dense_layers=self.dense_layers,
        )


@dataclass(kw_only=True)
class NoisyRunConfig(NoisySearchFields, EnsembleFields, ParentFields, DataFields, RuntimeFields):
    """Settings of a ``noisy`` run; each field is one CLI flag.

    The parent is loaded from ``parent`` (its model name is read from it) or trained. σ is
    searched by the KL trust region on a validation probe (or fixed with ``sigma``);
    ``population`` children are scored on validation and the top ``top_k`` kept;
    ``generations > 1`` continues with EvoTorch's PGPE or SNES; ``descriptors`` evaluates a
    saved ``ensemble.json`` as is.
    """

    descriptors: str | None = option(
        None,
        "evaluate a saved ensemble.json (with the --parent it came from)",
        metavar="ENSEMBLE_JSON",
        group="children",
    )
    generations: int = option(
        1,
        "1: one population around the parent; >1: evolve with --algorithm",
        check=check_positive_int,
        group="evolution (EvoTorch)",
    )
    algorithm: str = option(
        "pgpe", "EvoTorch algorithm", choices=ALGORITHMS, group="evolution (EvoTorch)"
    )
    num_actors: int = option(
        0,
        "Ray actors evaluating the population (0: this process)",
        check=check_nonneg_int,
        group="evolution (EvoTorch)",
    )

    def check(self) -> None:
        super().check()
        if self.generations > 1 and self.algorithm == "pgpe" and cast(int, self.population) % 2:
            raise UserError("PGPE samples mirrored pairs: use an even --population")
        self.parent_train_config()


__all__ = ["NoisyRunConfig", "NoisySearchFields"]
