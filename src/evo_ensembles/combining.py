"""How an ensemble's members become one prediction: the combining rules and who votes.

The bottom of the scoring path: metrics, calibration, every ensemble kind (the RL policy
ensemble included) combine (M, B, C) member probabilities through here.

Examples:
    >>> import torch
    >>> p = torch.tensor([[[0.9, 0.1]], [[0.4, 0.6]], [[0.2, 0.8]]])  # 3 members, 1 input
    >>> combine(p).tolist(), (combine(p, "vote") * 3).round().tolist()
    ([[0.5, 0.5]], [[1.0, 2.0]])
"""

from __future__ import annotations

import torch

from .errors import UserError

COMBINE_METHODS = ("mean", "vote")


def combine(member_probs: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """Combine (M, B, C) member probabilities into (B, C) ensemble probabilities.

    ``"mean"`` averages probabilities (the standard rule). ``"vote"`` returns the fraction of
    members voting for each class (majority vote; ties go to the lower class index under
    arg-max). Vote probabilities can be exactly 0, so their NLL is large by design.
    """
    if method == "mean":
        return member_probs.mean(dim=0)
    if method == "vote":
        votes = member_probs.argmax(dim=2)  # (M, B)
        counts = torch.nn.functional.one_hot(votes, member_probs.shape[2]).to(member_probs.dtype)
        return counts.mean(dim=0)
    raise UserError(f"unknown combine method {method!r}; choose from {COMBINE_METHODS}")


def voters(member_probs: torch.Tensor, parent_probs: torch.Tensor | None, include_parent: bool) -> torch.Tensor:
    """(M', B, C) probabilities of whoever votes: the members, and the parent first when it votes.

    The one place that decides whether the parent votes (the paper's Algorithm 1 adds it).
    """
    if not include_parent:
        return member_probs
    if parent_probs is None:
        raise UserError("include_parent=True needs a parent")
    return torch.cat([parent_probs.unsqueeze(0), member_probs])


__all__ = ["COMBINE_METHODS", "combine", "voters"]
