"""One way to describe a child: a small, JSON-able descriptor that regenerates it exactly.

A :class:`ChildSpec` plus the parent is the whole child: its mask comes from
``mask_seed`` (and, for a neural partition, the partition size ``k`` and index ``part``).
The noisy and stochastic methods add their fields (sign, σ, noise seed) to the same record,
so every method stores, ships and reloads children the same way.

Examples:
    >>> specs = make_child_specs(4, density=0.5, partition=True, seed=7)
    >>> [(s.k, s.part) for s in specs]
    [(2, 0), (2, 1), (2, 0), (2, 1)]
    >>> specs[0].mask_seed == specs[1].mask_seed   # a mask and its anti-mask
    True
    >>> ChildSpec.from_dict(specs[0].to_dict()) == specs[0]
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from ..checks import (
    check_choice,
    check_finite,
    check_fraction,
    check_known,
    check_nonneg,
    check_nonneg_int,
    check_positive_int,
    partition_parts,
)
from ..errors import UserError
from .anneal import ANNEAL_SCHEDULES
from .masks import Mask, partition_masks, sample_mask
from .stochastic import ANNEALS, check_t0

KINDS = ("prune", "noise", "stochastic")


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 53-bit seed (exact in JSON everywhere) for stream ``keys`` of ``seed``."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(int(k) for k in keys))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(11))


@dataclass(frozen=True)
class ChildSpec:
    """Everything that makes a child different from its parent.

    Attributes:
        kind: ``"prune"``, ``"noise"`` or ``"stochastic"``.
        mask_seed: seed of the mask (shared by all members of one partition).
        density: fraction of eligible weights in the child's subnetwork.
        k: partition size for neural partitioning, ``None`` for an independent random mask.
        part: which group of the partition this child is (0 ≤ part < k).
        structured: whole neurons/filters instead of single weights.
        scope: ``"local"`` (layerwise) or ``"global"`` budget.
        selection: ``"random"`` or ``"magnitude"``.
        sign, sigma, noise_seed, mu: the noisy method's mirrored Gaussian perturbation
            ``W + sign · N∘M`` with N ~ Normal(mu, sigma²) drawn from ``noise_seed``. For
            ``kind="stochastic"`` ``noise_seed`` seeds the per-step Bernoulli masks instead
            (``None``: derived from ``mask_seed`` and ``part``).
        anneal, t0, anneal_epochs, anneal_schedule: the stochastic method (SPEC §4): how
            ``P`` starts (``"temperature"``, ``"temperature-symmetric"``, ``"random"``,
            ``"mog"``), the start temperature T0 in [0, 1], the annealing epochs E_a >= 1
            and the schedule (``"linear"``, ``"cosine"``, ``"exp"``).
        prune_epochs: E_p for iterative pruning of a ``"prune"`` child: an equal share of
            the pruned weights is removed at the start of each of the first E_p tuning
            epochs; 0 prunes in one shot.
        dense_layers: the pruning scope — eligible tensors the perturbation leaves exactly
            as the parent's (never pruned, never perturbed; a tuned child still trains them,
            like its biases): ``"first"`` and ``"last"`` (the layers of the first and last
            eligible tensors, e.g. the input conv and the output layer) or name prefixes
            (``"fc3"``); see :func:`resolve_dense_layers`. Empty (the default) leaves nothing
            out. With a layerwise budget the other tensors' masks are exactly those of the
            same child without the option.
    """

    kind: str
    mask_seed: int
    density: float
    k: int | None = None
    part: int = 0
    structured: bool = False
    scope: str = "local"
    selection: str = "random"
    sign: int = 1
    sigma: float = 0.0
    noise_seed: int | None = None
    mu: float = 0.0
    anneal: str | None = None
    t0: float = 0.5
    anneal_epochs: int = 1
    anneal_schedule: str = "cosine"
    prune_epochs: int = 0
    dense_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Types first: descriptors also come from files (ensemble.json, run keys).
        object.__setattr__(self, "dense_layers", check_dense_layers(self.dense_layers))
        check_choice(self.kind, KINDS, "child kind")
        check_nonneg_int(self.mask_seed, "descriptor mask_seed")
        if self.noise_seed is not None:
            check_nonneg_int(self.noise_seed, "descriptor noise_seed")
        check_nonneg_int(self.part, "descriptor part")
        if self.k is not None:
            check_nonneg_int(self.k, "descriptor k")
        for name in ("structured",):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"descriptor {name} must be true or false, got {getattr(self, name)!r}")
        check_finite(self.mu, "descriptor mu")
        check_fraction(self.density, "density")
        if self.k is not None and (self.k < 2 or not 0 <= self.part < self.k):
            raise UserError(f"bad partition: k={self.k}, part={self.part}")
        if self.sign not in (1, -1) or isinstance(self.sign, bool):
            raise UserError(f"sign must be +1 or -1, got {self.sign!r}")
        check_nonneg(self.sigma, "sigma")
        check_t0(self.t0)
        check_positive_int(self.anneal_epochs, "annealing epochs")
        check_known(self.anneal_schedule, ANNEAL_SCHEDULES, "annealing schedule")
        check_nonneg_int(self.prune_epochs, "pruning epochs")
        if self.kind == "stochastic" and self.anneal not in ANNEALS:
            raise UserError(f"a stochastic child needs anneal in {ANNEALS}, got {self.anneal!r}")
        if self.kind != "stochastic" and self.anneal is not None:
            raise UserError(f"only stochastic children anneal (kind={self.kind!r}, anneal={self.anneal!r})")
        if self.prune_epochs and (self.kind != "prune" or self.k is not None):
            raise UserError("iterative pruning (prune_epochs > 0) needs kind='prune' and an "
                            "independent mask (no partition)")

    def mask(self, params: Mapping[str, torch.Tensor]) -> Mask:
        """Regenerate this child's mask over ``params`` (eligible parameters of the parent).

        Tensors named by ``dense_layers`` are not in the mask (so no perturbation touches
        them). A layerwise mask is drawn over all of ``params`` first, so the random streams
        — and every other tensor's mask — are those of the child without ``dense_layers``;
        a global budget is drawn over the remaining tensors only.
        """
        keep = subnet_parameters(params, self.dense_layers)
        if self.k is not None:
            full = partition_masks(params, self.k, seed=self.mask_seed, structured=self.structured)[self.part]
        else:
            full = sample_mask(keep if self.scope == "global" else params, self.density,
                               seed=self.mask_seed, structured=self.structured, scope=self.scope,
                               selection=self.selection)
        return {n: m for n, m in full.items() if n in keep}

    def mask_names(self, params: Mapping[str, torch.Tensor]) -> set[str]:
        """Names of the tensors this child prunes or perturbs (``params`` minus ``dense_layers``)."""
        return set(subnet_parameters(params, self.dense_layers))

    @property
    def bernoulli_seed(self) -> int:
        """Seed of a stochastic child's per-step Bernoulli masks."""
        return self.noise_seed if self.noise_seed is not None else derive_seed(self.mask_seed, 3, self.part)

    def to_dict(self) -> dict:
        """JSON-able fields; ``dense_layers`` only when set, so older descriptors stay identical."""
        d = asdict(self)
        d["dense_layers"] = list(self.dense_layers)
        if not d["dense_layers"]:
            del d["dense_layers"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> ChildSpec:
        """Inverse of :meth:`to_dict`; descriptors written before a field existed get its default."""
        if not isinstance(d, Mapping):
            raise UserError(f"a child descriptor must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown child descriptor fields: {sorted(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:  # a required field is missing
            raise UserError(f"bad child descriptor: {e}") from None


def check_dense_layers(dense_layers: Sequence[str]) -> tuple[str, ...]:
    """``dense_layers`` as a tuple of non-empty names; :class:`UserError` for anything else."""
    if not isinstance(dense_layers, (list, tuple)) or not all(
            isinstance(e, str) and e for e in dense_layers):
        raise UserError(f"dense_layers must be a list of layer names, 'first' or 'last'; "
                        f"got {dense_layers!r}")
    return tuple(dense_layers)


def _layer(name: str) -> str:
    """The module a parameter belongs to (``"fc3.weight"`` -> ``"fc3"``; ``"weight"`` -> ``""``)."""
    return name.rpartition(".")[0]


def resolve_dense_layers(
    params: Mapping[str, torch.Tensor], dense_layers: Sequence[str]
) -> set[str]:
    """Names of the tensors of ``params`` that ``dense_layers`` keeps dense.

    ``"first"`` / ``"last"`` are the first / last layer in ``params`` order
    (``named_parameters()`` order: the input layer and the output layer of a feed-forward
    net) — every tensor of that module, so its bias too when biases are eligible; any other
    entry is a name prefix (the exact name, or a prefix followed by ``.``) that must match
    at least one tensor. Raises :class:`UserError` for an entry that matches nothing and
    when no tensor would be left to prune.
    """
    names = list(params)
    out: set[str] = set()
    for entry in dense_layers:
        if entry in ("first", "last") and names:
            layer = _layer(names[0] if entry == "first" else names[-1])
            out |= {n for n in names if _layer(n) == layer}
            continue
        hit = {n for n in names if n == entry or n.startswith(entry + ".")}
        if not hit:
            raise UserError(f"dense layer {entry!r} matches no prunable tensor; use 'first', "
                            f"'last' or a prefix of: {', '.join(names)}")
        out |= hit
    if names and out == set(names):
        raise UserError(f"dense layers {', '.join(dense_layers)} cover every prunable tensor "
                        f"({', '.join(names)}); leave at least one layer to prune")
    return out


def subnet_parameters(
    params: Mapping[str, torch.Tensor], dense_layers: Sequence[str] = ()
) -> dict[str, torch.Tensor]:
    """``params`` without the tensors ``dense_layers`` keeps dense (the pruning scope)."""
    dense = resolve_dense_layers(params, dense_layers) if dense_layers else set()
    return {n: p for n, p in params.items() if n not in dense}


def make_child_specs(
    n: int,
    density: float,
    *,
    partition: bool = False,
    k: int = 2,
    seed: int = 0,
    kind: str = "prune",
    structured: bool = False,
    scope: str = "local",
    selection: str = "random",
    **extra,
) -> list[ChildSpec]:
    """``n`` child descriptors: independent random masks, or ``k``-way neural partitions.

    ``extra`` holds further :class:`ChildSpec` fields shared by all children, e.g.
    ``kind="stochastic", anneal="temperature", t0=0.5, anneal_epochs=3``.

    With ``partition=True`` consecutive groups of ``k`` children share a partition seed and
    take its groups in turn, so their masks are disjoint and cover every weight; the density
    of each is then 1/k and ``density`` must equal it.
    """
    check_positive_int(n, "number of children")
    if partition:
        if int(k) != k or k < 2:
            raise UserError(f"a partition needs k >= 2, got {k}")
        if partition_parts(density) != k:
            raise UserError(f"with neural partitioning each child keeps 1/k = {1 / k:.4g} of the "
                            f"weights; got density {density}")
        if selection != "random":
            raise UserError("neural partitions are random; selection must be 'random'")
        return [
            ChildSpec(kind=kind, mask_seed=derive_seed(seed, 1, i // k), density=1.0 / k, k=k,
                      part=i % k, structured=structured, scope=scope, **extra)
            for i in range(n)
        ]
    return [
        ChildSpec(kind=kind, mask_seed=derive_seed(seed, 1, i), density=density, structured=structured,
                  scope=scope, selection=selection, **extra)
        for i in range(n)
    ]
