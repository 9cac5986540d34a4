"""The KL trust region: choose σ so children stay a set distance from the parent (SPEC §2).

KL = (1/N) Σ_n Σ_c p_c(x_n; θ) log(p_c(x_n; θ) / p_c(x_n; θ + γ)), measured on a held-out
*probe* set (never the test split) and averaged over a few children per (σ, density) cell.
Every cell reuses the same seeds (common random numbers), so KL grows smoothly with σ and
the σ hitting a target Δ can be read off by interpolation (``grid``) or found by geometric
bisection for one density (``bisect``).

Examples:
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles.es import ClassifierFitness
    >>> from evo_ensembles.subnet import InPlacePerturber
    >>> net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> x = torch.randn(256, 4)
    >>> tr = search_sigma(InPlacePerturber(net), ClassifierFitness(x, reference=net), target=0.02,
    ...                   densities=(0.5,), progress=False)
    >>> tr.sigma > 0 and tr.status[0.5]
    'ok'
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_known, check_positive, check_positive_int, partition_parts
from ..errors import UserError
from ..subnet import InPlacePerturber
from .evaluate import evaluate_children
from .population import NoiseSampling, make_noisy_specs

DEFAULT_SIGMAS: tuple[float, ...] = tuple(float(s) for s in np.geomspace(1e-4, 0.3, 19))
DEFAULT_DENSITIES: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
SEARCH_MODES = ("grid", "bisect")


@dataclass
class TrustRegion:
    """Result of a σ search.

    Attributes:
        target: the KL Δ aimed at.
        density: the density the chosen σ is for.
        sigma: the chosen σ.
        sigma_by_density: the σ hitting Δ at every density of the grid.
        status: per density ``"ok"``, ``"below-grid"`` (even the largest σ stays under Δ) or
            ``"above-grid"`` (even the smallest σ exceeds Δ).
        grid: one row per evaluated (σ, density): mean/s.e. KL and mean accuracy/fitness.
        mode: ``"grid"`` or ``"bisect"``.
    """

    target: float
    density: float
    sigma: float
    sigma_by_density: dict[float, float]
    status: dict[float, str]
    grid: list[dict] = field(default_factory=list)
    mode: str = "grid"

    def to_dict(self) -> dict:
        return {"target": self.target, "density": self.density, "sigma": self.sigma, "mode": self.mode,
                "sigma_by_density": {str(k): v for k, v in self.sigma_by_density.items()},
                "status": {str(k): v for k, v in self.status.items()}, "grid": self.grid}


def _cell(perturber: InPlacePerturber, probe: Callable[[nn.Module], dict], sampling: NoiseSampling,
          children: int, seed: int) -> dict:
    specs = make_noisy_specs(children, seed=seed, sampling=sampling)
    recs = evaluate_children(perturber.model, specs, probe, perturber=perturber, progress=False)
    kls = np.array([r["kl"] for r in recs], dtype=float)
    row: dict[str, float | None] = {"sigma": sampling.sigma, "density": sampling.density, "kl": float(kls.mean()),
           "kl_se": float(kls.std(ddof=1) / math.sqrt(len(kls))) if len(kls) > 1 else 0.0,
           "children": len(recs)}
    for key in ("accuracy", "fitness"):
        vals = [r[key] for r in recs if key in r and r[key] == r[key]]
        row[key] = float(np.mean(vals)) if vals else None
    return row


def kl_grid(
    perturber: InPlacePerturber,
    probe: Callable[[nn.Module], dict],
    *,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    densities: Sequence[float] = DEFAULT_DENSITIES,
    children: int = 4,
    seed: int = 0,
    sampling: NoiseSampling | None = None,
    progress: bool = True,
    cache: MutableMapping[str, dict] | None = None,
) -> list[dict]:
    """Mean KL (and accuracy when the probe has labels) for every σ × density cell
    (cells already in ``cache`` are not measured again).

    ``probe(model)`` must return a dict with ``"kl"`` (e.g. a
    :class:`~evo_ensembles.es.ClassifierFitness` with a reference). ``sampling`` gives the
    mirrored/partitioned/structured settings; partitioning is dropped at densities that are
    not 1/k.
    """
    check_positive_int(children, "children per cell")
    if not sigmas or min(sigmas) < 0:
        raise UserError("the σ grid must be non-empty and non-negative")
    base = sampling or NoiseSampling(sigma=0.0)
    rows = []
    cells = [(d, s) for d in densities for s in sorted(sigmas)]
    for d, s in tqdm(cells, desc="trust region", disable=not progress, leave=False):
        at = _sampling_at(base, s, d)
        key = "cell " + json.dumps({"sampling": at.to_dict(), "children": children, "seed": seed}, sort_keys=True)
        if cache is not None and key in cache:
            rows.append(dict(cache[key]))
            continue
        rows.append(_cell(perturber, probe, at, children, seed))
        if cache is not None:
            cache[key] = rows[-1]
    return rows


def _sampling_at(base: NoiseSampling, sigma: float, density: float) -> NoiseSampling:
    partitioned = base.partitioned and partition_parts(density) is not None
    return replace(base, sigma=float(sigma), density=float(density), partitioned=partitioned)


def sigma_for_target(rows: Sequence[dict], target: float) -> tuple[float, str]:
    """σ whose mean KL equals ``target``, interpolating log KL against log σ between grid points.

    Returns (σ, status); outside the grid the nearest end is returned with status
    ``"below-grid"``/``"above-grid"``.
    """
    pts = sorted((r["sigma"], r["kl"]) for r in rows if r["sigma"] > 0)
    if not pts:
        raise UserError("no σ > 0 in the grid")
    if pts[0][1] >= target:
        return pts[0][0], "above-grid"
    for (s0, k0), (s1, k1) in zip(pts, pts[1:]):
        if k0 < target <= k1:
            if k0 <= 0:
                return s1, "ok"
            t = (math.log(target) - math.log(k0)) / (math.log(k1) - math.log(k0))
            return math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0))), "ok"
    return pts[-1][0], "below-grid"


def bisect_sigma(
    perturber: InPlacePerturber,
    probe: Callable[[nn.Module], dict],
    *,
    target: float,
    density: float,
    lo: float = 1e-5,
    hi: float = 1.0,
    iters: int = 14,
    children: int = 4,
    seed: int = 0,
    sampling: NoiseSampling | None = None,
) -> tuple[float, list[dict]]:
    """Geometric bisection on σ ∈ [lo, hi] for one density; returns σ and the rows visited."""
    base = sampling or NoiseSampling(sigma=0.0)
    rows = []
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        row = _cell(perturber, probe, _sampling_at(base, mid, density), children, seed)
        rows.append(row)
        lo, hi = (mid, hi) if row["kl"] < target else (lo, mid)
    return math.sqrt(lo * hi), rows


def search_sigma(
    perturber: InPlacePerturber,
    probe: Callable[[nn.Module], dict],
    *,
    target: float = 0.02,
    density: float = 0.5,
    densities: Sequence[float] | None = None,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    mode: str = "grid",
    children: int = 4,
    seed: int = 0,
    sampling: NoiseSampling | None = None,
    progress: bool = True,
    cache: MutableMapping[str, dict] | None = None,
) -> TrustRegion:
    """Find the σ that puts children at mean KL ``target`` from the parent.

    ``mode="grid"`` evaluates σ × density (``densities`` always includes ``density``) and
    interpolates per density; ``mode="bisect"`` bisects σ for ``density`` alone.
    """
    check_positive(target, "the target KL")
    check_known(mode, SEARCH_MODES, "search mode")
    if mode == "bisect":
        sigma, rows = bisect_sigma(perturber, probe, target=target, density=density,
                                   children=children, seed=seed, sampling=sampling)
        return TrustRegion(target, density, sigma, {density: sigma}, {density: "ok"}, rows, mode)
    dens = sorted({float(density), *(float(d) for d in (densities or DEFAULT_DENSITIES))})
    rows = kl_grid(perturber, probe, sigmas=sigmas, densities=dens, children=children, seed=seed,
                   sampling=sampling, progress=progress, cache=cache)
    by_d, status = {}, {}
    for d in dens:
        by_d[d], status[d] = sigma_for_target([r for r in rows if r["density"] == d], target)
    if status[float(density)] != "ok":
        warnings.warn(f"trust region: target KL {target} is {status[float(density)]} at density "
                      f"{density}; using σ={by_d[float(density)]:.3g}. Widen the σ grid.", stacklevel=2)
    return TrustRegion(target, float(density), by_d[float(density)], by_d, status, rows, mode)
