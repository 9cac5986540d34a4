"""Post-hoc calibration: temperature scaling fit on validation NLL (Guo et al., 2017), for one
model and for an ensemble, as Ashukha et al. (2020) ask of every method before comparing them.

Shapes: ``logits`` is (B, C) for one model or (M, B, C) for M members. Anything whose
softmax is the member's prediction works as logits: raw outputs, or log-probabilities
(``log p``), since ``softmax(log p / T) = softmax(z / T)`` when ``p = softmax(z)`` — the
per-row constant ``logsumexp(z)`` cancels. So a member that only reports probabilities is
scaled *exactly* like one that reports logits, through :func:`as_logits`.

How the one temperature ``T`` applies (``where``):

- ``"members"`` (the default, for ``combine="mean"``): every member's logits are divided by
  ``T`` before its softmax, then the probabilities are averaged:
  ``p = mean_m softmax(z_m / T)``. For one model this is plain temperature scaling.
- ``"combined"``: ``T`` scales the log of the *combined* probabilities,
  ``p ∝ (combine(p_1..p_M))^(1/T)``: for combiners with no per-member logits (``"vote"``
  fractions, or outputs that are averages already).

``T > 0`` divides every logit of a row by the same number, so no model's (and, with one
member, no ensemble's) arg-max ever changes; with several members the mean of tempered
softmaxes can change the arg-max of a near-tie, which is why calibrated accuracy is reported.

The fit: ``T`` minimises the validation NLL over ``log T ∈ [log 0.05, log 20]``: a grid of
41 points, then a bounded Brent search (``scipy.optimize.minimize_scalar``) between the
grid neighbours of the best point. It is deterministic, and the NLL is computed in float64.

Examples:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> z = 3 * torch.randn(2000, 4, generator=g)   # labels drawn from softmax(z / 3)
    >>> y = torch.multinomial(torch.softmax(z / 3, 1), 1, generator=g).squeeze(1)
    >>> fit = fit_temperature(z, y)            # over-confident logits: T > 1
    >>> round(fit.temperature, 1), fit.nll_after < fit.nll_before
    (3.1, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .combining import combine as combine_probs
from .errors import UserError
from .metrics import EPS

T_BOUNDS = (0.05, 20.0)
GRID_POINTS = 41
WHERE = ("members", "combined")


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it did on the split it was fit on.

    Attributes:
        temperature: ``T`` (1.0 when a fallback applies).
        where: ``"members"`` or ``"combined"`` (see the module docstring).
        nll_before, nll_after: NLL on the fitting split at ``T = 1`` and at ``T`` (``None``
            for an empty split).
        examples: size of the fitting split.
        at_bound: ``T`` sits on a bound of the search (the NLL still fell towards it).
        fallback: why ``T = 1`` was kept instead of fitting (``None`` when it was fit).
    """

    temperature: float
    where: str
    nll_before: float | None
    nll_after: float | None
    examples: int
    at_bound: bool = False
    fallback: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "record") -> TemperatureFit:
        """The fit :meth:`to_dict` wrote (a saved ensemble's); a bad record is a UserError."""
        t = d.get("temperature") if isinstance(d, dict) else None
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0):
            raise UserError(f"{source}: the temperature must be a finite number > 0, got {t!r}")
        where = d.get("where", "members")
        if where not in WHERE:
            raise UserError(f"{source}: temperature 'where' must be one of {WHERE}, got {where!r}")
        return cls(float(t), where, d.get("nll_before"), d.get("nll_after"), int(d.get("examples", 0)),
                   bool(d.get("at_bound", False)), d.get("fallback"))


def as_logits(probs: torch.Tensor) -> torch.Tensor:
    """Log-probabilities usable as logits (see the module docstring); clamped at 1e-12."""
    return probs.double().clamp_min(EPS).log()


def _log_probs(logits: torch.Tensor, temperature: float, where: str, combine: str) -> torch.Tensor:
    """(B, C) log of the tempered combined probabilities, float64."""
    z = logits.double()
    if z.dim() == 2:
        z = z.unsqueeze(0)
    if where == "members":
        if combine != "mean":
            raise UserError("a per-member temperature needs combine='mean'; use where='combined'")
        logp = torch.log_softmax(z / temperature, dim=2)
        return torch.logsumexp(logp, dim=0) - math.log(z.shape[0])

    pooled = combine_probs(torch.softmax(z, dim=2), combine)
    return torch.log_softmax(as_logits(pooled) / temperature, dim=1)


def tempered_probs(logits: torch.Tensor, temperature: float = 1.0, *, where: str = "members",
                   combine: str = "mean") -> torch.Tensor:
    """(B, C) probabilities of one model (B, C) or an ensemble (M, B, C) at temperature ``T``.

    Examples:
        >>> z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> tempered_probs(z, 2.0).argmax(1).tolist() == z.argmax(1).tolist()
        True
    """
    if where not in WHERE:
        raise UserError(f"where must be one of {WHERE}, got {where!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise UserError(f"a temperature must be a finite number > 0, got {temperature!r}")
    return _log_probs(logits, float(temperature), where, combine).exp().to(torch.float32)


def _nll(logits: torch.Tensor, targets: torch.Tensor, t: float, where: str, combine: str) -> float:
    if where == "members" and logits.dim() == 3:  # only the target's log-probability is needed
        z = logits / t
        own = z.gather(2, targets.view(1, -1, 1).expand(z.shape[0], -1, 1)).squeeze(2)
        logp = torch.logsumexp(own - torch.logsumexp(z, dim=2), dim=0) - math.log(z.shape[0])
        return float(-logp.clamp_min(math.log(EPS)).mean())
    logp = _log_probs(logits, t, where, combine)
    return float(-logp.gather(1, targets.view(-1, 1)).clamp_min(math.log(EPS)).mean())


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, *, where: str = "members",
                    combine: str = "mean", bounds: tuple[float, float] = T_BOUNDS) -> TemperatureFit:
    """The temperature minimising NLL on ``(logits, targets)`` — a validation split, never test.

    ``logits``: (B, C) for one model, (M, B, C) for an ensemble (one ``T`` for all members).
    Falls back to ``T = 1`` (and says why in ``fallback``) for an empty split or one whose
    targets hold a single class (the NLL then falls without bound as ``T → 0`` on a split
    the model gets right, so no temperature is meaningful); non-finite logits are an error.
    """
    from scipy.optimize import minimize_scalar

    if where not in WHERE:
        raise UserError(f"where must be one of {WHERE}, got {where!r}")
    if where == "members" and combine != "mean":
        raise UserError("a per-member temperature needs combine='mean'; use where='combined'")
    if logits.dim() not in (2, 3) or logits.shape[-2] != len(targets):
        raise UserError(f"logits must be (B, C) or (M, B, C) with B = {len(targets)} targets, "
                        f"got {tuple(logits.shape)}")
    lo, hi = (float(b) for b in bounds)
    if not 0 < lo < 1 < hi:
        raise UserError(f"temperature bounds must satisfy 0 < low < 1 < high, got {bounds!r}")
    targets = targets.detach().cpu().long()
    logits = logits.detach().cpu().double()
    n = len(targets)
    if n == 0:
        return TemperatureFit(1.0, where, None, None, 0, fallback="no validation examples")
    if not bool(torch.isfinite(logits).all()):
        raise UserError("cannot fit a temperature: the model gave non-finite outputs (NaN or inf) "
                        "on the validation split")
    before = _nll(logits, targets, 1.0, where, combine)
    if len(torch.unique(targets)) < 2:
        return TemperatureFit(1.0, where, before, before, n,
                              fallback="the validation split holds one class")
    grid = torch.linspace(math.log(lo), math.log(hi), GRID_POINTS, dtype=torch.float64).tolist()
    values = [_nll(logits, targets, math.exp(g), where, combine) for g in grid]
    best = min(range(len(grid)), key=lambda i: (values[i], abs(grid[i])))  # ties: nearest T = 1
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    res = minimize_scalar(lambda g: _nll(logits, targets, math.exp(g), where, combine),
                          bounds=(a, b), method="bounded", options={"xatol": 1e-5})
    log_t, after = (float(res.x), float(res.fun)) if res.fun <= values[best] else (grid[best], values[best])
    t = math.exp(log_t)
    at_bound = abs(log_t - math.log(lo)) < 1e-3 or abs(log_t - math.log(hi)) < 1e-3
    if after > before:  # cannot happen for a minimum over a range containing T = 1, but keep the rule exact
        t, after = 1.0, before
    return TemperatureFit(t, where, before, after, n, at_bound=at_bound)


__all__ = ["T_BOUNDS", "TemperatureFit", "as_logits", "fit_temperature", "tempered_probs"]
