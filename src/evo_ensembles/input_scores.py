"""Uncertainty per input from an ensemble's member outputs, and selective prediction.

Input: member outputs (M, B, C) — logits, or probabilities with ``logits=False`` — or one
model's (B, C). With ``p_m`` member m's probabilities and ``p = mean_m p_m``:

- ``max_prob``: max_c p_c (confidence; high = sure);
- ``entropy``: H[p] = −Σ_c p_c log p_c (total uncertainty);
- ``expected_entropy``: mean_m H[p_m] (aleatoric part);
- ``mutual_information``: H[p] − mean_m H[p_m] ≥ 0 (epistemic part: member disagreement;
  0 for one member or identical members);
- ``variation_ratio``: 1 − (members voting for the most voted class) / M;
- ``energy`` (only from logits): mean_m of −T·logsumexp(z_m / T) (Liu et al., 2020; lower
  for in-distribution inputs).

:meth:`Uncertainty.score` gives each as an *OOD score* — higher for inputs more likely out of
distribution (``max_prob`` becomes 1 − max_prob) — the convention of
:func:`evo_ensembles.metrics.auroc` and friends. Logarithms are natural (nats).

Examples:
    >>> import torch
    >>> z = torch.tensor([[[4.0, 0.0]], [[0.0, 4.0]]])      # two members that disagree
    >>> u = uncertainty(z)
    >>> round(float(u.mutual_information[0]), 3), float(u.variation_ratio[0])
    (0.603, 0.5)
    >>> selective_predict(u.probs, coverage=1.0).accepted.tolist()
    [True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .calibration import as_logits
from .checks import check_known, check_probability
from .errors import UserError
from .metrics import EPS

SCORES = ("max_prob", "entropy", "mutual_information", "variation_ratio", "energy")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(EPS).log()).sum(dim=-1)


@dataclass(frozen=True)
class Uncertainty:
    """Combined probabilities (B, C) and per-input uncertainties (B,) of one prediction."""

    probs: torch.Tensor
    max_prob: torch.Tensor
    entropy: torch.Tensor
    expected_entropy: torch.Tensor
    mutual_information: torch.Tensor
    variation_ratio: torch.Tensor
    energy: torch.Tensor | None  # None when the members gave probabilities only

    def score(self, name: str) -> torch.Tensor:
        """(B,) OOD score ``name`` (one of :data:`SCORES`): higher = more likely OOD."""
        check_known(name, SCORES, "uncertainty score")
        if name == "max_prob":
            return 1.0 - self.max_prob
        value = getattr(self, name)
        if value is None:
            raise UserError(f"the {name} score needs logits; these members gave probabilities only")
        return value

    def available_scores(self) -> tuple[str, ...]:
        """The scores this prediction has (``energy`` only with logits)."""
        return tuple(s for s in SCORES if s != "energy" or self.energy is not None)


def uncertainty(outputs: torch.Tensor, *, logits: bool = True, temperature: float = 1.0) -> Uncertainty:
    """Probabilities plus every per-input uncertainty of a (M, B, C) ensemble or (B, C) model.

    ``temperature`` divides every member's logits first (:mod:`evo_ensembles.calibration`),
    so scores can be read off the calibrated ensemble; members combine by the mean.
    """
    z = outputs.detach().cpu().double()
    if z.dim() == 2:
        z = z.unsqueeze(0)
    if z.dim() != 3:
        raise UserError(f"outputs must be (M, B, C) or (B, C), got {tuple(outputs.shape)}")
    if not logits:
        z = as_logits(z)
    if not bool(torch.isfinite(z).all()):
        raise UserError("cannot score uncertainty: the outputs hold NaN or inf")
    member_p = torch.softmax(z / temperature, dim=2)
    p = member_p.mean(dim=0)
    entropy = _entropy(p)
    expected = _entropy(member_p).mean(dim=0)
    m, _, c = member_p.shape
    votes = torch.nn.functional.one_hot(member_p.argmax(dim=2), c).sum(dim=0)  # (B, C)
    energy = (-temperature * torch.logsumexp(z / temperature, dim=2)).mean(dim=0) if logits else None
    return Uncertainty(
        probs=p.float(),
        max_prob=p.max(dim=1).values,
        entropy=entropy,
        expected_entropy=expected,
        mutual_information=(entropy - expected).clamp_min(0.0),  # ≥ 0 exactly (Jensen); clamp rounding
        variation_ratio=1.0 - votes.max(dim=1).values.double() / m,
        energy=energy,
    )


@dataclass(frozen=True)
class Selection:
    """A selective prediction: the predicted class of every input and which are answered."""

    predictions: torch.Tensor  # (B,) arg-max classes
    accepted: torch.Tensor  # (B,) bool: answered (True) or abstained (False)
    threshold: float  # confidence at or above which inputs are answered

    @property
    def coverage(self) -> float:
        return float(self.accepted.double().mean()) if len(self.accepted) else 0.0


def selective_predict(probs: torch.Tensor, *, coverage: float | None = None, threshold: float | None = None,
                      confidence: torch.Tensor | None = None) -> Selection:
    """Answer the most confident inputs and abstain on the rest.

    Give exactly one of ``coverage`` (answer the ⌈coverage · B⌉ most confident; ties in
    confidence go to the earlier input) or ``threshold`` (answer inputs whose confidence is
    ≥ it). ``confidence`` defaults to the max probability; pass e.g. ``-u.mutual_information``
    to rank by another score (higher = more confident).
    """
    if (coverage is None) == (threshold is None):
        raise UserError("give exactly one of coverage or threshold")
    conf = probs.detach().cpu().double().max(dim=1).values if confidence is None \
        else torch.as_tensor(confidence).detach().cpu().double().flatten()
    preds = probs.detach().cpu().argmax(dim=1)
    if len(conf) != len(preds):
        raise UserError(f"{len(conf)} confidences for {len(preds)} inputs")
    if threshold is not None:
        accepted = conf >= threshold
        return Selection(preds, accepted, float(threshold))
    assert coverage is not None  # exactly one of coverage and threshold was given (checked above)
    check_probability(coverage, "coverage")
    k = math.ceil(coverage * len(conf) - 1e-9)
    order = torch.sort(conf, descending=True, stable=True).indices
    accepted = torch.zeros(len(conf), dtype=torch.bool)
    accepted[order[:k]] = True
    thr = float(conf[order[k - 1]]) if k else math.inf
    return Selection(preds, accepted, thr)


__all__ = ["SCORES", "Selection", "Uncertainty", "selective_predict", "uncertainty"]
