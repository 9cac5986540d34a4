"""What the recipes share beyond the library: the training cost of a subnetwork run (SPEC §5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

import torch
from torch import nn

from ..data import DataSplits

if TYPE_CHECKING:
    from ..results import TrainingCost as TrainingCostRecord


class SubnetworkCost(TypedDict):
    """The training-cost keys of a subnetwork run's results (all None without a training record)."""

    training_flops: float | None
    epochs: float | None
    training_cost: TrainingCostRecord | None


def parent_cost(parent: nn.Module, parent_meta: dict[str, Any], data: DataSplits,
                batch_size: int) -> tuple[float | None, float | None]:
    """FLOPs and epochs of the parent's training, from the training record in its checkpoint
    (``(None, None)`` for a checkpoint without one)."""
    from ..baselines.common import training_flops

    train = parent_meta.get("train")
    if not isinstance(train, dict):
        return None, None
    epochs = train.get("epochs")
    if not isinstance(epochs, (int, float)):
        return None, None
    bs = int(train.get("batch_size", batch_size))
    return training_flops(parent, data, bs, epochs * len(data.train)), float(epochs)


def subnetwork_cost(parent: nn.Module, parent_meta: dict[str, Any], data: DataSplits, batch_size: int,
                    children: list[tuple[dict[str, torch.Tensor], list[tuple[float, float]]]]) -> SubnetworkCost:
    """Training cost of a subnetwork ensemble (SPEC §5): the parent's dense training plus
    each child's tuning at its density, relative to one dense model trained for as many
    epochs as the parent and children together (the paper's 0.85× for the sparse ensembles).

    ``children``: ``(mask, [(epochs, extra_density), ...])`` per child: its tuning phases,
    each at the mask's density plus the expected active share of its pruned weights
    (0 after pruning; stochastic annealing keeps more); an empty mask is a dense child.
    """
    from ..baselines.common import masked_training_flops, training_flops
    from ..flops import TrainingCost

    flops, epochs = parent_cost(parent, parent_meta, data, batch_size)
    if flops is None or epochs is None:  # both None together (no training record)
        return {"training_flops": None, "epochs": None, "training_cost": None}
    n = len(data.train)
    for mask, phases in children:
        for child_epochs, extra in phases:
            flops += (masked_training_flops(parent, mask, data, batch_size, child_epochs * n, extra_density=extra)
                      if mask else training_flops(parent, data, batch_size, child_epochs * n))
            epochs += child_epochs
    ref = training_flops(parent, data, batch_size, epochs * n)
    cost = TrainingCost(flops, ref, epochs, epochs)
    return {"training_flops": cost.relative, "epochs": epochs,
            "training_cost": cast("TrainingCostRecord", cost.to_dict())}
