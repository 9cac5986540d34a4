"""Evaluation metrics for classifiers and ensembles (SPEC §5).

Shapes: ``probs`` is (B, C) probabilities (rows sum to 1), ``targets`` is (B,) int64, and
``member_probs`` is (M, B, C) — the outputs of M ensemble members. Every metric takes
probabilities, never logits: the NLL of an ensemble is the NLL of its *averaged
probabilities* (a defect seen in peers is averaging logits or feeding averaged
probabilities into ``CrossEntropyLoss``).

Example:
    >>> import torch
    >>> p = torch.tensor([[0.9, 0.1], [0.2, 0.8]]); y = torch.tensor([0, 0])
    >>> round(accuracy(p, y), 2), round(nll(p, y), 4)
    (0.5, 0.8574)
"""

from __future__ import annotations

import torch

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
    """Accuracy, NLL, ECE (``n_bins`` equal-width bins) and Brier of one prediction."""
    probs, targets = probs.detach().cpu(), targets.detach().cpu()
    return {
        "accuracy": accuracy(probs, targets),
        "nll": nll(probs, targets),
        "ece": ece(probs, targets, n_bins),
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
    from .ensemble import combine, voters

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

    Example:
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
