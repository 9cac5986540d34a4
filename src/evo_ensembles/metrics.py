"""Evaluation metrics for classifiers and ensembles (SPEC §5).

Shapes: ``probs`` is (B, C) probabilities (rows sum to 1), ``targets`` is (B,) int64, and
``member_probs`` is (M, B, C) — the outputs of M ensemble members. Every metric takes
probabilities, never logits: the NLL of an ensemble is the NLL of its *averaged
probabilities* (a defect seen in peers is averaging logits or feeding averaged
probabilities into ``CrossEntropyLoss``).

Examples:
    >>> import torch
    >>> p = torch.tensor([[0.9, 0.1], [0.2, 0.8]]); y = torch.tensor([0, 0])
    >>> round(accuracy(p, y), 2), round(nll(p, y), 4)
    (0.5, 0.8574)
"""

from __future__ import annotations

import math

import torch

from .combining import combine, voters

EPS = 1e-12
DEFAULT_ECE_BINS = 15


def accuracy(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max is the target."""
    return float((probs.argmax(dim=1) == targets).float().mean())


def nll(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean −log p(target); probabilities are clamped at 1e-12 to stay finite."""
    p = probs.gather(1, targets.view(-1, 1)).squeeze(1)
    return float(-torch.log(p.double().clamp_min(EPS)).mean())


def ece(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Expected calibration error, equal-width confidence bins on [0, 1].

    ECE = Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|, with bin b = (b/n, (b+1)/n] (the first bin
    also holds confidence 0).
    """
    conf, pred = probs.double().max(dim=1)
    correct = (pred == targets).double()
    bins = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)
    total = torch.zeros(n_bins, dtype=torch.float64)
    count = torch.zeros(n_bins, dtype=torch.float64)
    gap = torch.zeros(n_bins, dtype=torch.float64)
    count.index_add_(0, bins, torch.ones_like(conf))
    total.index_add_(0, bins, correct)
    gap.index_add_(0, bins, conf)
    nonempty = count > 0
    per_bin = (total[nonempty] - gap[nonempty]).abs()  # |Σcorrect − Σconf| = |B|·|acc − conf|
    return float(per_bin.sum() / conf.numel())


def brier(probs: torch.Tensor, targets: torch.Tensor) -> float:
    """Multi-class Brier score: mean over rows of Σ_c (p_c − 1[c = y])²."""
    onehot = torch.nn.functional.one_hot(targets, probs.shape[1]).to(probs.dtype)
    return float(((probs - onehot) ** 2).sum(dim=1).mean())


def classification_metrics(
    probs: torch.Tensor, targets: torch.Tensor, n_bins: int = DEFAULT_ECE_BINS
) -> dict[str, float]:
    """Accuracy, NLL, ECE (``n_bins`` equal-width bins), adaptive ECE (``n_bins`` equal-mass
    bins) and Brier of one prediction."""
    probs, targets = probs.detach().cpu(), targets.detach().cpu()
    return {
        "accuracy": accuracy(probs, targets),
        "nll": nll(probs, targets),
        "ece": ece(probs, targets, n_bins),
        "adaptive_ece": adaptive_ece(probs, targets, n_bins),
        "brier": brier(probs, targets),
    }


def mean_kl(ref_probs: torch.Tensor, probs: torch.Tensor) -> float:
    """Mean over inputs of KL(ref ‖ p) = Σ_c ref_c log(ref_c / p_c) (SPEC §2 trust region).

    Both (B, C); probabilities are clamped at 1e-12 so a collapsed child gives a large but
    finite KL.
    """
    r = ref_probs.detach().cpu().double().clamp_min(EPS)
    q = probs.detach().cpu().double().clamp_min(EPS)
    return float((r * (r.log() - q.log())).sum(dim=1).mean())


# --- diversity between members (SPEC §5, Table 7.1) -------------------------------------


def disagreement_matrix(member_probs: torch.Tensor) -> torch.Tensor:
    """(M, M) fraction of inputs on which members i and j predict different classes."""
    pred = member_probs.argmax(dim=2)  # (M, B)
    return (pred.unsqueeze(1) != pred.unsqueeze(0)).double().mean(dim=2)


def kl_matrix(member_probs: torch.Tensor) -> torch.Tensor:
    """(M, M) mean over inputs of KL(f_i ‖ f_j) = Σ_c p_i log(p_i / p_j); not symmetric."""
    p = member_probs.double().clamp_min(EPS)
    logp = p.log()
    # Σ_c p_i log p_i − Σ_c p_i log p_j, batched over all (i, j).
    self_term = (p * logp).sum(dim=2).mean(dim=1)  # (M,)
    cross = torch.einsum("ibc,jbc->ij", p, logp) / p.shape[1]
    return self_term.unsqueeze(1) - cross


def correlation_matrix(member_probs: torch.Tensor) -> torch.Tensor:
    """(M, M) Pearson correlation of members' output vectors (all inputs and classes)."""
    m = member_probs.shape[0]
    return torch.corrcoef(member_probs.double().reshape(m, -1)).reshape(m, m)  # M=1: 0-dim otherwise


def off_diagonal_mean(matrix: torch.Tensor) -> float:
    """Mean of the entries with i ≠ j (NaN for a 1×1 matrix)."""
    m = matrix.shape[0]
    if m < 2:
        return float("nan")
    mask = ~torch.eye(m, dtype=torch.bool)
    return float(matrix[mask].mean())


def diversity(member_probs: torch.Tensor) -> dict[str, object]:
    """Disagreement, KL and correlation as M×M matrices plus their off-diagonal means."""
    member_probs = member_probs.detach().cpu()
    mats = {
        "disagreement": disagreement_matrix(member_probs),
        "kl": kl_matrix(member_probs),
        "correlation": correlation_matrix(member_probs),
    }
    out: dict[str, object] = {k: off_diagonal_mean(v) for k, v in mats.items()}
    out["matrices"] = {k: v.tolist() for k, v in mats.items()}
    return out


def ensemble_metrics(
    parent_probs: torch.Tensor | None,
    member_probs: torch.Tensor,
    targets: torch.Tensor,
    *,
    include_parent: bool = False,
    combine_method: str = "mean",
    ece_bins: int = DEFAULT_ECE_BINS,
) -> dict[str, object]:
    """Parent, per-member and ensemble metrics plus member diversity, from (B, C) parent and
    (M, B, C) member probabilities (members only; whether the parent votes is ``include_parent``).

    Every ensemble kind is scored through here (:meth:`evo_ensembles.ensemble.BaseEnsemble.evaluate`).
    """
    ens = combine(voters(member_probs, parent_probs, include_parent), combine_method)
    return {
        "parent": None if parent_probs is None else classification_metrics(parent_probs, targets, ece_bins),
        "members": [classification_metrics(p, targets, ece_bins) for p in member_probs],
        "ensemble": classification_metrics(ens, targets, ece_bins),
        "diversity": diversity(member_probs),
    }


# --- corrupted test sets (SPEC §5: cAcc, cNLL, cECE) --------------------------------------


def corruption_summary(cells: list[dict]) -> dict[str, object]:
    """cAcc, cNLL and cECE: the means over every (type, severity) cell, plus accuracy per
    severity and per type.

    ``cells``: one dict per cell with ``type``, ``severity``, ``accuracy``, ``nll``, ``ece``
    (e.g. :func:`classification_metrics` of that cell plus its keys).

    Examples:
        >>> s = corruption_summary([{"type": "fog", "severity": 1, "accuracy": 0.8, "nll": 0.5, "ece": 0.1},
        ...                         {"type": "fog", "severity": 5, "accuracy": 0.4, "nll": 1.5, "ece": 0.3}])
        >>> round(s["accuracy"], 2), s["accuracy_by_severity"]
        (0.6, {'1': 0.8, '5': 0.4})
    """
    if not cells:
        raise ValueError("no corrupted cells to summarise")

    def mean_of(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    severities = sorted({c["severity"] for c in cells})
    types = list(dict.fromkeys(c["type"] for c in cells))
    return {
        "accuracy": mean_of(cells, "accuracy"),
        "nll": mean_of(cells, "nll"),
        "ece": mean_of(cells, "ece"),
        "accuracy_by_severity": {str(s): mean_of([c for c in cells if c["severity"] == s], "accuracy")
                                 for s in severities},
        "accuracy_by_type": {t: mean_of([c for c in cells if c["type"] == t], "accuracy") for t in types},
        "cells": len(cells),
    }


# --- calibration beyond equal-width bins ---------------------------------------------------


def reliability_bins(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = DEFAULT_ECE_BINS,
                     *, adaptive: bool = False) -> dict[str, list[float]]:
    """Per-bin mean confidence, accuracy and count: the points of a reliability diagram.

    ``adaptive=False``: the equal-width bins of :func:`ece`; ``True``: the equal-mass bins of
    :func:`adaptive_ece`. Empty bins are left out.
    """
    conf, pred = probs.detach().cpu().double().max(dim=1)
    correct = (pred == targets.detach().cpu()).double()
    if adaptive:
        order = torch.sort(conf, stable=True).indices
        groups = [g for g in torch.tensor_split(order, n_bins) if len(g)]
    else:
        bins = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)
        groups = [torch.nonzero(bins == b).flatten() for b in range(n_bins)]
        groups = [g for g in groups if len(g)]
    return {"confidence": [float(conf[g].mean()) for g in groups],
            "accuracy": [float(correct[g].mean()) for g in groups],
            "count": [len(g) for g in groups]}


def adaptive_ece(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Adaptive (equal-mass) ECE: Σ_b |B_b|/N · |acc(B_b) − conf(B_b)| over ``n_bins`` bins that
    each hold N/n_bins inputs (sizes differ by at most one) sorted by confidence; ties in
    confidence go to bins in input order (a stable sort), so the value is deterministic.

    Examples:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]]); y = torch.tensor([0, 1, 0, 0])
        >>> round(adaptive_ece(p, y, n_bins=2), 4)   # bins {0.6, 0.7}: acc .5 conf .65; {0.8, 0.9}: 1 vs .85
        0.15
    """
    b = reliability_bins(probs, targets, n_bins, adaptive=True)
    n = sum(b["count"])
    return float(sum(c * abs(a - f) for c, a, f in zip(b["count"], b["accuracy"], b["confidence"])) / n)


# --- out-of-distribution detection ---------------------------------------------------------
# Convention: a *score* is higher for inputs judged more likely out-of-distribution (entropy,
# mutual information, energy, 1 − max probability). Every function takes the in-distribution
# scores and the OOD scores as two 1-D arrays.


def _ood_arrays(id_scores, ood_scores):
    import numpy as np

    s_id = torch.as_tensor(id_scores).detach().cpu().double().flatten().numpy()
    s_ood = torch.as_tensor(ood_scores).detach().cpu().double().flatten().numpy()
    if len(s_id) == 0 or len(s_ood) == 0:
        raise ValueError("OOD metrics need at least one in-distribution and one OOD score")
    if not (np.isfinite(s_id).all() and np.isfinite(s_ood).all()):
        raise ValueError("OOD scores must be finite")
    labels = np.concatenate([np.zeros(len(s_id)), np.ones(len(s_ood))])  # 1 = OOD
    return np.concatenate([s_id, s_ood]), labels


def auroc(id_scores, ood_scores) -> float:
    """Area under the ROC curve of telling OOD (positive) from in-distribution by the score:
    P(score_ood > score_id) + ½ P(tie) (scikit-learn's ``roc_auc_score``). 0.5 for identical
    score distributions, 1.0 for perfectly separated ones; symmetric in which side is positive.

    Examples:
        >>> auroc([0.1, 0.2], [0.3, 0.4]), auroc([0.5, 0.5], [0.5, 0.5])
        (1.0, 0.5)
    """
    from sklearn.metrics import roc_auc_score

    scores, labels = _ood_arrays(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def aupr(id_scores, ood_scores, *, positive: str = "ood") -> float:
    """Area under the precision-recall curve (scikit-learn's ``average_precision_score``).

    ``positive="ood"`` (AUPR-Out): OOD inputs are the positives, ranked by the score;
    ``positive="id"`` (AUPR-In): in-distribution inputs are the positives, ranked by −score.
    Unlike AUROC it depends on the share of positives (a random score gets that share).
    """
    from sklearn.metrics import average_precision_score

    scores, labels = _ood_arrays(id_scores, ood_scores)
    if positive == "ood":
        return float(average_precision_score(labels, scores))
    if positive == "id":
        return float(average_precision_score(1 - labels, -scores))
    raise ValueError(f"positive must be 'ood' or 'id', got {positive!r}")


def fpr_at_tpr(id_scores, ood_scores, tpr: float = 0.95) -> float:
    """FPR at ``tpr`` TPR (FPR95 by default), with **in-distribution as the positive side**
    (Hendrycks & Gimpel; Liang et al.): the fraction of OOD inputs still accepted as
    in-distribution by the strictest threshold on the score that accepts at least ``tpr`` of
    the in-distribution inputs (an input is accepted when its score ≤ the threshold).

    Examples:
        >>> fpr_at_tpr([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7], tpr=0.75)   # accept ≤ 0.3
        0.0
        >>> fpr_at_tpr([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6, 0.7], tpr=1.0)    # accept ≤ 0.4
        0.25
    """
    from sklearn.metrics import roc_curve

    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}")
    scores, labels = _ood_arrays(id_scores, ood_scores)
    # positives = in-distribution, ranked by −score (accept the least OOD-looking first)
    fpr, tprs, _ = roc_curve(1 - labels, -scores, drop_intermediate=False)
    return float(fpr[int((tprs >= tpr - 1e-12).argmax())])


def ood_metrics(id_scores, ood_scores) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR95 (ID positive) of one score on one OOD set."""
    return {"auroc": auroc(id_scores, ood_scores), "aupr_in": aupr(id_scores, ood_scores, positive="id"),
            "aupr_out": aupr(id_scores, ood_scores, positive="ood"), "fpr95": fpr_at_tpr(id_scores, ood_scores)}


# --- selective classification ------------------------------------------------------------


def _cumulative_errors(confidence, correct) -> torch.Tensor:
    """Expected number of errors among the k most confident inputs, k = 1..N.

    Inputs are accepted by descending confidence; within a group of equal confidence the
    order is undefined, so errors are spread evenly over the group (the expectation over
    random tie-breaking), which makes every curve independent of input order.
    """
    conf = torch.as_tensor(confidence).detach().cpu().double().flatten()
    err = 1.0 - torch.as_tensor(correct).detach().cpu().double().flatten()
    if len(conf) == 0 or len(conf) != len(err):
        raise ValueError("selective metrics need equally many (≥ 1) confidences and correctness flags")
    order = torch.sort(conf, descending=True, stable=True).indices
    conf, err = conf[order], err[order]
    _, counts = torch.unique_consecutive(conf, return_counts=True)
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    cum_at_end = torch.cumsum(err, 0)[ends - 1]
    cum_at_start = torch.cat([torch.zeros(1, dtype=torch.float64), cum_at_end[:-1]])
    group = torch.repeat_interleave(torch.arange(len(counts)), counts)
    rank = torch.arange(1, len(conf) + 1, dtype=torch.float64) - starts[group].double()
    out = cum_at_start[group] + (cum_at_end - cum_at_start)[group] * rank / counts[group].double()
    return out


def risk_coverage(confidence, correct) -> dict[str, torch.Tensor]:
    """Coverage k/N and selective risk (error rate among the k most confident) for k = 1..N."""
    cum = _cumulative_errors(confidence, correct)
    k = torch.arange(1, len(cum) + 1, dtype=torch.float64)
    return {"coverage": k / len(cum), "risk": cum / k}


def aurc(confidence, correct) -> float:
    """Area under the risk-coverage curve (Geifman & El-Yaniv): the mean over k = 1..N of the
    error rate among the k most confident inputs (lower is better; ties as in
    :func:`risk_coverage`).

    Examples:
        >>> aurc([0.9, 0.8, 0.7], [1, 1, 0])    # risks 0, 0, 1/3
        0.1111111111111111
    """
    return float(risk_coverage(confidence, correct)["risk"].mean())


def augrc(confidence, correct) -> float:
    """Area under the generalized risk-coverage curve (Traub et al., 2024): the mean over
    k = 1..N of (errors among the k most confident) / N, the joint probability of being
    accepted and wrong (lower is better).

    Examples:
        >>> augrc([0.9, 0.8, 0.7], [1, 1, 0])   # generalized risks 0, 0, 1/3
        0.1111111111111111
        >>> round(augrc([0.9, 0.8, 0.7], [0, 1, 1]), 4)   # 1/3, 1/3, 1/3
        0.3333
    """
    cum = _cumulative_errors(confidence, correct)
    return float((cum / len(cum)).mean())


def risk_at_coverage(confidence, correct, coverage: float = 0.9) -> float:
    """Error rate among the ⌈coverage · N⌉ most confident inputs (ties as in :func:`risk_coverage`)."""
    import math

    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    cum = _cumulative_errors(confidence, correct)
    k = max(1, math.ceil(coverage * len(cum) - 1e-9))
    return float(cum[k - 1] / k)


def selective_metrics(probs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """AURC, AUGRC and risk at 90 % coverage of a prediction, ranked by its max probability."""
    conf, pred = probs.detach().cpu().max(dim=1)
    correct = (pred == targets.detach().cpu()).double()
    return {"aurc": aurc(conf, correct), "augrc": augrc(conf, correct),
            "risk_at_90": risk_at_coverage(conf, correct, 0.9)}


# --- deep ensemble equivalent (Ashukha et al., 2020) -----------------------------------


def deep_ensemble_equivalent(nll_value: float, curve: list[float]) -> dict[str, object]:
    """How many deep-ensemble members give calibrated NLL ``nll_value``.

    ``curve[k - 1]`` is the calibrated test NLL of a deep ensemble of k independently trained
    members (each subset temperature-scaled on validation; the mean over subsets of size k),
    k = 1..M. As Ashukha et al. (2020), the curve is linearly interpolated between integer
    sizes and the DEE is the smallest size l ≥ 1 whose NLL is ≤ ``nll_value``. Outside the
    curve there is no number: ``{"dee": None, "bound": "<1"}`` when one member already does
    better, ``{"dee": None, "bound": ">M"}`` when all M members do worse.

    Examples:
        >>> deep_ensemble_equivalent(0.25, [0.30, 0.26, 0.24, 0.23])["dee"]   # between 2 and 3
        2.5
        >>> deep_ensemble_equivalent(0.20, [0.30, 0.26])
        {'dee': None, 'bound': '>2'}
    """
    if not curve:
        raise ValueError("the deep-ensemble curve is empty")
    if not math.isfinite(nll_value):
        return {"dee": None, "bound": "undefined (NLL not finite)"}
    if nll_value > curve[0]:
        return {"dee": None, "bound": "<1"}
    for k in range(1, len(curve)):
        lo, hi = curve[k - 1], curve[k]
        if hi <= nll_value:
            frac = 0.0 if lo == hi else (lo - nll_value) / (lo - hi)
            return {"dee": k + max(0.0, min(1.0, frac)), "bound": None}
    if nll_value >= curve[-1]:
        return {"dee": float(len(curve)), "bound": None}
    return {"dee": None, "bound": f">{len(curve)}"}
