"""Training cost in FLOPs, counted by ``torch.utils.flop_counter.FlopCounterMode`` on a real
training step (forward + backward of the method's own objective), not from formulas.

Conventions (SPEC §5; stated once, here):

- One multiply-add counts as 2 FLOPs (FlopCounterMode's convention). The optimizer update
  is not counted (it is linear in the parameters and the same for every method).
- A masked layer counts at its density: its share of the step (forward, and the weight and
  input gradients of its backward, as FlopCounterMode attributes them to the module) is
  multiplied by the fraction of its weights kept (:func:`step_flops` with ``densities``).
- A method's training cost is FLOPs per training example × the examples it trained on,
  reported relative to one dense model trained for the budget's epochs on the full training
  split (:class:`TrainingCost`). Dynamic sparse training adds its regrowth cost by the RigL
  convention (:func:`rigl_update_flops`).

Examples:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(4, 1, 4, 4), torch.randint(0, 3, (4,))
    >>> dense = step_flops(net, x, y)
    >>> half = step_flops(net, x, y, densities={"1": 0.5})     # layer "1" at 50% density
    >>> dense, dense - half == 0.5 * layer_flops(net, x, y)["1"]
    (2624.0, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .checks import check_probability
from .errors import UserError
from .train.loop import Objective, cross_entropy


def _count(model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective: Objective) -> FlopCounterMode:
    was = model.training
    buffers = {k: v.clone() for k, v in model.named_buffers()}  # BatchNorm statistics move in a step
    model.train()
    counter = FlopCounterMode(display=False)
    try:
        with torch.random.fork_rng(devices=[]), counter:
            loss, _, _ = objective(model, x, y)
            loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
    return counter


def layer_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                objective: Objective = cross_entropy) -> dict[str, float]:
    """FLOPs of one training step on ``(x, y)`` per module that holds parameters of its own,
    by module name as in ``model.named_modules()`` (forward and backward together)."""
    counts = _count(model, x, y, objective).get_flop_counts()
    prefix = type(model).__name__
    out = {}
    for name, module in model.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)):
            out[name] = float(sum(counts.get(f"{prefix}.{name}", {}).values()))
    return out


def step_flops(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    objective: Objective = cross_entropy,
    densities: Mapping[str, float] | None = None,
) -> float:
    """FLOPs of one training step (forward + backward of ``objective``) on the batch ``(x, y)``.

    ``densities`` maps module names (as in ``named_modules()``) to the fraction of their
    weights kept; each named module's share counts at that fraction. The model is left as it
    was: gradients cleared, buffers (BatchNorm statistics) restored, random state untouched.
    """
    counter = _count(model, x, y, objective)
    total = float(counter.get_total_flops())
    if densities:
        counts, prefix = counter.get_flop_counts(), type(model).__name__
        names = dict(model.named_modules())
        for name, d in densities.items():
            if name not in names:
                raise UserError(f"no module {name!r} in the model to count at density {d}")
            check_probability(d, f"density of {name!r}")
            total -= (1.0 - d) * float(sum(counts.get(f"{prefix}.{name}", {}).values()))
    return total


def mask_densities(mask: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Module densities from a mask keyed by parameter name (``"fc1.weight"`` → ``"fc1"``).

    A module's density is that of its masked weight (its bias is not masked and costs
    next to nothing).
    """
    return {name.rsplit(".", 1)[0]: float(m.float().mean()) for name, m in mask.items()}


def rigl_update_flops(dense_step: float, sparse_step: float) -> float:
    """Extra FLOPs of one gradient-based regrowth update (RigL, Evci et al. 2020, §4.1):
    that step's weight gradient is computed densely. With a step of ``3·f`` FLOPs (forward,
    input gradient, weight gradient) the extra is one dense minus one sparse forward,
    ``(dense_step − sparse_step) / 3``."""
    return max(dense_step - sparse_step, 0.0) / 3.0


@dataclass
class TrainingCost:
    """What a method's training cost, relative to one dense model's full training.

    ``flops``: FLOPs counted for every model the method trained; ``reference_flops``: one
    dense model of the same architecture trained for ``reference_epochs`` on the full
    training split; ``epochs``: epochs run, summed over separately trained models.
    """

    flops: float
    reference_flops: float
    epochs: float
    reference_epochs: float

    @property
    def relative(self) -> float:
        return self.flops / self.reference_flops if self.reference_flops else float("nan")

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "relative": self.relative}


def per_example(flops_of_step: float, batch_size: int) -> float:
    """FLOPs per training example of a step measured on ``batch_size`` examples."""
    if batch_size < 1:
        raise UserError("a FLOP count needs a non-empty batch")
    return flops_of_step / batch_size


__all__ = ["TrainingCost", "layer_flops", "mask_densities", "per_example", "rigl_update_flops", "step_flops"]
