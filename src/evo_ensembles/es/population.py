"""Populations of noisy children: mirrored and partitioned sampling (SPEC §2).

One *draw* is a (mask, noise) pair of seeds. With mirrored and partitioned sampling it
yields 2·k children — for k = 2 the paper's four: W + N∘M, W + N∘(1−M), W − N∘M,
W − N∘(1−M) — in that order (sign outer, partition part inner). Either option can be
turned off; with neither, every child is its own draw.

Examples:
    >>> specs = make_noisy_specs(8, density=0.5, sigma=0.01, seed=0)
    >>> [(s.sign, s.part) for s in specs[:4]]
    [(1, 0), (1, 1), (-1, 0), (-1, 1)]
    >>> len({(s.mask_seed, s.noise_seed) for s in specs})   # two draws
    2
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..checks import check_choice, check_fraction, check_nonneg, check_positive_int, partition_parts
from ..errors import UserError
from ..subnet import ChildSpec, check_dense_layers, derive_seed
from ..subnet.masks import MASK_SCOPES

ALGORITHMS = ("pgpe", "snes")  # EvoTorch algorithms evo_ensembles.es.evolve can continue with

# Seed streams of derive_seed(seed, stream, draw); 1 is taken by make_child_specs' masks.
_MASK_STREAM, _NOISE_STREAM = 2, 3


@dataclass(frozen=True)
class NoiseSampling:
    """How children are drawn around the parent (the fixed settings of the ES engine).

    Attributes:
        sigma: noise standard deviation σ (≥ 0).
        density: fraction of eligible weights perturbed (the mask M); with ``partitioned``
            it must be 1/k for an integer k ≥ 2, and the k disjoint groups are all used.
        mirrored: also use −N for every draw (antithetic noise).
        partitioned: also use the anti-mask (k-way groups) of every draw.
        structured, scope: whole neurons/filters; layerwise ("local") or "global" budget.
        mu: mean μ of the noise (0 in all the paper's experiments).
        dense_layers: the pruning scope — layers no child perturbs (``"first"``, ``"last"``
            or name prefixes; see :func:`~evo_ensembles.subnet.resolve_dense_layers`).
    """

    sigma: float
    density: float = 0.5
    mirrored: bool = True
    partitioned: bool = True
    structured: bool = False
    scope: str = "local"
    mu: float = 0.0
    dense_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "dense_layers", check_dense_layers(self.dense_layers))
        check_nonneg(self.sigma, "sigma")
        check_fraction(self.density, "density")
        check_choice(self.scope, MASK_SCOPES, "scope")
        if self.partitioned:
            if partition_parts(self.density) is None:
                raise UserError(f"partitioned sampling needs density 1/k for an integer k >= 2 "
                                f"(0.5, 0.333.., 0.25, ...); got {self.density}. Turn partitioning off "
                                "for other densities")
            if self.scope != "local":
                raise UserError("partitioned sampling is layerwise; use scope='local'")

    @property
    def k(self) -> int | None:
        """Partition size, or None for an independent mask per draw."""
        return partition_parts(self.density) if self.partitioned else None

    @property
    def group_size(self) -> int:
        """Children per draw."""
        return (self.k or 1) * (2 if self.mirrored else 1)

    def child(self, mask_seed: int, noise_seed: int, *, part: int = 0, sign: int = 1,
              sigma: float | None = None) -> ChildSpec:
        """The noisy child of one draw (``mask_seed``, ``noise_seed``) with these settings."""
        k = self.k
        return ChildSpec(kind="noise", mask_seed=int(mask_seed), density=(1.0 / k) if k else self.density,
                         k=k, part=int(part), structured=self.structured, scope=self.scope,
                         sign=int(sign), sigma=self.sigma if sigma is None else float(sigma),
                         noise_seed=int(noise_seed), mu=self.mu, dense_layers=self.dense_layers)

    def to_dict(self) -> dict:
        return asdict(self)


def make_noisy_specs(
    n: int,
    *,
    seed: int,
    sampling: NoiseSampling | None = None,
    first_draw: int = 0,
    **sampling_kw,
) -> list[ChildSpec]:
    """``n`` noisy child descriptors from draws ``first_draw, first_draw + 1, ...`` of ``seed``.

    Pass a :class:`NoiseSampling` or its fields as keywords. When ``n`` is not a multiple
    of the group size the last draw is cut short (it still pairs + with − first).
    """
    check_positive_int(n, "population size")
    s = sampling if sampling is not None else NoiseSampling(**sampling_kw)
    specs: list[ChildSpec] = []
    draw = first_draw
    while len(specs) < n:
        mask_seed, noise_seed = derive_seed(seed, _MASK_STREAM, draw), derive_seed(seed, _NOISE_STREAM, draw)
        for sign in ((1, -1) if s.mirrored else (1,)):
            for part in range(s.k or 1):
                specs.append(s.child(mask_seed, noise_seed, part=part, sign=sign))
        draw += 1
    return specs[:n]


def draws_needed(n: int, sampling: NoiseSampling) -> int:
    """How many draws ``n`` children use (so the next population starts after them)."""
    return -(-n // sampling.group_size)
