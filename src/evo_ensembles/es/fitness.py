"""Fitness of a child: a callable ``fitness(model) -> dict`` with a ``"fitness"`` entry.

Anything with that signature plugs into the engine (the RL issue passes episode return).
:class:`ClassifierFitness` scores a classifier on a labelled split — accuracy by default,
or −NLL — and also reports its mean KL(parent ‖ child) (SPEC §2) when given the parent's
probabilities on the same inputs.

Examples:
    >>> import torch, torch.nn as nn
    >>> net = nn.Linear(4, 3)
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> fit = ClassifierFitness(x, y, reference=net)
    >>> rec = fit(net)
    >>> sorted(rec), rec["kl"] == 0.0
    (['accuracy', 'fitness', 'kl', 'nll'], True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..checks import check_known
from ..ensemble import predict_probs
from ..errors import UserError
from ..metrics import accuracy, mean_kl, nll

Fitness = Callable[[nn.Module], dict]
FITNESS_METRICS = ("accuracy", "nll")


class ClassifierFitness:
    """Accuracy (or −NLL) of a model on ``(x, y)``, plus KL to a reference distribution.

    Args:
        x: inputs of the split children are *selected* on (validation — never the test split).
        y: integer labels of ``x``; None for KL-only probes.
        metric: ``"accuracy"`` (default, as in the paper) or ``"nll"`` (fitness = −NLL).
        reference: the parent (a model, evaluated once now) or its (B, C) probabilities.
        batch_size: evaluation batch size.
        device: evaluation device (default: the model's).
    """

    extra_keys = ("accuracy", "nll", "kl")

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        metric: str = "accuracy",
        reference: nn.Module | torch.Tensor | None = None,
        batch_size: int = 1024,
        device: torch.device | str | None = None,
    ) -> None:
        check_known(metric, FITNESS_METRICS, "fitness metric")
        if y is None and metric != "accuracy":
            raise UserError("an NLL fitness needs labels")
        if len(x) == 0:
            raise UserError("the fitness split is empty")
        self.x, self.y, self.metric = x, y, metric
        self.batch_size, self.device = batch_size, device
        if isinstance(reference, nn.Module):
            reference = predict_probs(reference, x, batch_size=batch_size, device=device)
        self.reference = reference

    def __call__(self, model: nn.Module) -> dict:
        probs = predict_probs(model, self.x, batch_size=self.batch_size, device=self.device)
        rec = {"accuracy": float("nan"), "nll": float("nan"), "kl": float("nan")}
        if self.y is not None:
            rec["accuracy"], rec["nll"] = accuracy(probs, self.y), nll(probs, self.y)
        if self.reference is not None:
            rec["kl"] = mean_kl(self.reference, probs)
        rec["fitness"] = rec["accuracy"] if self.metric == "accuracy" else -rec["nll"]
        return rec
