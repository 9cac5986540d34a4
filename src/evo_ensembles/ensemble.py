"""Ensembles: members' outputs as one (M, B, C) probability tensor, and how to combine them.

Example:
    >>> import torch, torch.nn as nn
    >>> nets = [nn.Linear(4, 3) for _ in range(2)]
    >>> ens = Ensemble(nets)
    >>> ens.member_probs(torch.randn(5, 4)).shape
    torch.Size([2, 5, 3])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

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


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Softmax outputs (B, C) of ``model`` in eval mode on ``x``, returned on CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [
            torch.softmax(model(x[i : i + batch_size].to(device, non_blocking=True)).float(), 1).cpu()
            for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


class Ensemble:
    """A list of member networks, optionally with the parent, combined on probabilities.

    Members can be added at any time (growth on demand); ``include_parent`` adds the parent's
    output to the average as in the paper's Algorithm 1.
    """

    def __init__(
        self,
        members: Iterable[nn.Module] = (),
        *,
        parent: nn.Module | None = None,
        include_parent: bool = False,
        combine: str = "mean",
        descriptors: Sequence[dict] | None = None,
    ) -> None:
        if combine not in COMBINE_METHODS:
            raise UserError(f"unknown combine method {combine!r}; choose from {COMBINE_METHODS}")
        if include_parent and parent is None:
            raise UserError("include_parent=True needs a parent")
        self.members: list[nn.Module] = list(members)
        self.descriptors: list[dict] = list(descriptors) if descriptors else [{} for _ in self.members]
        self.parent = parent
        self.include_parent = include_parent
        self.combine_method = combine

    def __len__(self) -> int:
        return len(self.members)

    def add(self, member: nn.Module, descriptor: dict | None = None) -> None:
        """Grow the ensemble by one member."""
        self.members.append(member)
        self.descriptors.append(descriptor or {})

    def _voters(self) -> list[nn.Module]:
        return ([self.parent] if self.include_parent and self.parent is not None else []) + self.members

    def member_probs(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """(M, B, C) probabilities of the voting members (parent first when included)."""
        voters = self._voters()
        if not voters:
            raise UserError("the ensemble has no members")
        return torch.stack([predict_probs(m, x, batch_size=batch_size) for m in voters])

    def predict_proba(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """(B, C) combined probabilities."""
        return combine(self.member_probs(x, batch_size=batch_size), self.combine_method)
