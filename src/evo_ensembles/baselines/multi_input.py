"""MIMO (Havasi et al. 2021, "Training independent subnetworks for robust prediction"): one
network with M inputs and M outputs; member ``i`` is the path from input ``i`` to output ``i``.

:func:`to_mimo` widens a model's first weight layer to take the M inputs stacked along
channels (input ``m`` feeds input channels ``m·C … (m+1)·C − 1``; after a Flatten, features
``m·D … (m+1)·D − 1``) and its last ``nn.Linear`` to give M × num_classes outputs (member
``m``'s logits are outputs ``m·K … (m+1)·K − 1``). Everything else is shared, BatchNorm
included. :class:`MIMO`'s forward takes (B, M, ...) — one input per member — or a plain
(B, ...) batch, which feeds the same image to every input (test time); both return (M, B, K).

Training (:class:`MIMOLoss`, uncertainty-baselines' ``cifar/mimo.py`` semantics):

- *batch repetitions* ``r``: the B indices of a batch are tiled ``r`` times and shuffled (the
  main shuffle), so each member sees r·B inputs per step and every example exactly r times;
- *input sharing* ``ρ``: the first ``⌊(1 − ρ)·r·B⌋`` positions of the main shuffle are
  shuffled again independently for each member, the remaining ones are the same for every
  member. ρ = 1: all members get identical inputs; ρ = 0: independent permutations;
- loss: the sum over members of each member's mean cross-entropy (UB: the batch mean of the
  per-example sum over members).

Randomness: the shuffles draw from torch's global CPU generator, which :func:`fit` seeds per
(seed, epoch) inside a fork, so training is reproducible and resumable.

Deviations: UB also widens every layer (``width_multiplier``) — here the architecture is the
peer's own, so MIMO and the other methods compare at one network size. The two widened
layers are re-initialised by resampling the original layer's weights (its own init
scheme), the input side scaled by 1/√M for its M-fold fan-in.

Examples:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    >>> mimo_net = to_mimo(net, 2)
    >>> mimo_net.net[0].in_channels, mimo_net.net[3].out_features
    (2, 6)
    >>> mimo_net(torch.randn(5, 2, 1, 8, 8)).shape, mimo_net(torch.randn(5, 1, 8, 8)).shape
    (torch.Size([2, 5, 3]), torch.Size([2, 5, 3]))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_positive_int, check_probability
from ..data import DataSplits
from ..errors import UserError
from ..models import ModelSource, build_model, make_model
from ..subnet import derive_seed
from ..train import TrainConfig, fit
from .common import BaselineResult, MultiOutputEnsemble, stage_dir, training_flops

_SEED_STREAM = 41  # derive_seed(cfg.seed, 41, 0): the widened layers' initialisation


class MIMO(nn.Module):
    """A network whose first layer takes M stacked inputs and whose last gives M heads.

    ``forward(x)``: ``x`` of shape (B, M, *input_shape) gives member ``i`` the input
    ``x[:, i]``; (B, *input_shape) gives every member the same input. Returns (M, B, K).
    """

    def __init__(self, net: nn.Module, members: int, input_ndim: int) -> None:
        super().__init__()
        self.net, self.members, self.input_ndim = net, members, input_ndim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.input_ndim + 1:
            x = x.unsqueeze(1).expand(x.shape[0], self.members, *x.shape[1:])
        elif x.dim() != self.input_ndim + 2 or x.shape[1] != self.members:
            raise UserError(
                f"MIMO with {self.members} members takes (B, {self.members}, ...) or (B, ...) inputs "
                f"with {self.input_ndim} dims per example, got shape {tuple(x.shape)}")
        b = x.shape[0]
        out = self.net(x.reshape(b, self.members * x.shape[2], *x.shape[3:]))
        return out.reshape(b, self.members, -1).transpose(0, 1)


def _resample(w: torch.Tensor, shape: Sequence[int], scale: float, g: torch.Generator) -> torch.Tensor:
    """A tensor of ``shape`` whose entries are drawn (with replacement) from ``w``'s, times
    ``scale``: a fresh draw from the original layer's own initial distribution."""
    flat = w.detach().flatten()
    idx = torch.randint(0, flat.numel(), (math.prod(shape),), generator=g).to(flat.device)
    return (flat[idx] * scale).reshape(shape)


def _widen(layer: nn.Conv2d | nn.Linear, members: int, *, inputs: bool, outputs: bool,
           g: torch.Generator) -> nn.Conv2d | nn.Linear:
    """``layer`` with ``members`` × its inputs and/or outputs, freshly initialised from it."""
    m_in, m_out = (members if inputs else 1), (members if outputs else 1)
    has_bias = layer.bias is not None
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            raise UserError("MIMO cannot widen a grouped first convolution (groups != 1)")
        # a Conv2d's sizes are typed tuple[int, ...] (as _ConvNd's) but are always pairs
        kernel_size, stride = cast("tuple[int, int]", layer.kernel_size), cast("tuple[int, int]", layer.stride)
        padding = cast("str | tuple[int, int]", layer.padding)
        dilation = cast("tuple[int, int]", layer.dilation)
        new: nn.Conv2d | nn.Linear = nn.Conv2d(layer.in_channels * m_in, layer.out_channels * m_out, kernel_size,
                                               stride, padding, dilation, 1, has_bias, layer.padding_mode)
    else:
        new = nn.Linear(layer.in_features * m_in, layer.out_features * m_out, bias=has_bias)
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(_resample(layer.weight, new.weight.shape, 1 / math.sqrt(m_in), g))
        if has_bias:
            assert layer.bias is not None and new.bias is not None  # new was built with bias=has_bias
            new.bias.copy_(layer.bias.detach().repeat(m_out))
    return new


def to_mimo(model: nn.Module, members: int, *, input_shape: Sequence[int] | None = None,
            seed: int = 0) -> MIMO:
    """A MIMO network of ``members`` built from a copy of ``model`` (left untouched).

    The first ``nn.Conv2d``/``nn.Linear`` (module registration order) is widened to take the
    members' inputs stacked along channels, the last ``nn.Linear`` to give every member its
    logits; the model's output must be that layer's output. ``input_shape`` (one example's
    shape, default ``model.input_shape``, else (C, H, W) for a conv-first model) tells a
    shared input (B, ...) from stacked ones (B, M, ...). ``seed`` draws the widened layers.
    """
    check_positive_int(members, "members")
    net = copy.deepcopy(model)
    layers = [(name, m) for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    linears = [(name, m) for name, m in layers if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError("MIMO needs a model whose output layer is an nn.Linear")
    (first_name, first), (last_name, last) = layers[0], linears[-1]
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None and not isinstance(first, nn.Conv2d):
        raise UserError("give to_mimo input_shape= (one example's shape) for a model without .input_shape")
    input_ndim = 3 if input_shape is None else len(tuple(input_shape))
    g = torch.Generator().manual_seed(int(seed))
    # Build both replacements first, then set them (never mutate the tree while walking it).
    same = first is last
    new_first = _widen(first, members, inputs=True, outputs=same, g=g)
    new_last = None if same else _widen(last, members, inputs=False, outputs=True, g=g)
    for name, new in ((first_name, new_first), (last_name, new_last)):
        if new is None:
            continue
        if not name:
            net = new
            continue
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent), child, new)
    return MIMO(net, members, input_ndim)


def mimo_indices(batch_size: int, members: int, repetitions: int = 1, input_sharing: float = 0.0, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(members, repetitions · batch_size) indices into a batch: row ``i`` is what member ``i``
    sees (see the module docstring for ``r`` and ``ρ``). ``generator=None``: torch's global one.

    Examples:
        >>> idx = mimo_indices(4, 3, 2, 1.0, generator=torch.Generator().manual_seed(0))
        >>> idx.shape, bool((idx == idx[0]).all()), idx[0].bincount().tolist()
        (torch.Size([3, 8]), True, [2, 2, 2, 2])
    """
    n = batch_size * repetitions
    main = torch.arange(batch_size).repeat(repetitions)[torch.randperm(n, generator=generator)]
    k = int(n * (1.0 - input_sharing))  # truncated, as UB's float-to-int cast
    return torch.stack([torch.cat([main[:k][torch.randperm(k, generator=generator)], main[k:]])
                        for _ in range(members)])


@dataclass(frozen=True)
class MIMOLoss:
    """MIMO's training objective with ``batch_repetitions`` (r) and ``input_sharing`` (ρ):
    the sum over members of each member's mean cross-entropy on its r·B inputs."""

    batch_repetitions: int = 1
    input_sharing: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int(self.batch_repetitions, "batch_repetitions")
        check_probability(self.input_sharing, "input_sharing")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        idx = mimo_indices(len(y), cast(MIMO, model).members, self.batch_repetitions, self.input_sharing).to(x.device)
        logits = model(x[idx.T])  # (r·B, M, ...) in → (M, r·B, K) out
        m, n, k = logits.shape
        flat, targets = logits.reshape(m * n, k), y[idx].reshape(m * n)
        return F.cross_entropy(flat, targets, reduction="sum") / n, flat, targets


def _check_output_layer(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """MIMO widens the first ``nn.Conv2d``/``nn.Linear`` and the last ``nn.Linear``, so your own
    model must return that last layer's output as it is (checked on one probe batch)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"MIMO needs a model whose output layer is an nn.Linear; {type(model).__name__} has none")
    seen: list[torch.Tensor] = []
    handle = linears[-1].register_forward_hook(lambda _m, _i, out: seen.append(out))
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    finally:
        handle.remove()
        model.train(was)
    if not seen or seen[-1].shape != out.shape or not torch.equal(seen[-1], out):
        raise UserError(f"MIMO widens the last nn.Linear into every member's logits, and {type(model).__name__}'s "
                        "output is not that layer's output (a layer or function after it?): not supported")


def mimo(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 3, batch_repetitions: int = 4,
         input_sharing: float = 0.0, device="auto", progress=False, workdir=None) -> BaselineResult:
    """MIMO with ``members`` subnetworks in one ``model``, trained for ``cfg.epochs`` with
    :class:`MIMOLoss` (``batch_repetitions`` r, ``input_sharing`` ρ).

    The defaults are the reference's CIFAR settings behind the paper's table
    (uncertainty-baselines ``cifar/mimo.py``: M = 3, r = 4, ρ = 0; its Fashion-MNIST script
    uses M = 4, r = 1).

    Each step trains on r·B inputs per member, so the training FLOPs (counted on the real
    step) are ≈ r × a dense model's per example, plus the widened first and last layers.

    Examples:
        >>> from evo_ensembles import load_dataset, TrainConfig
        >>> data = load_dataset("fashion-mnist", subset=256)                  # doctest: +SKIP
        >>> res = mimo("lenet-5", data, TrainConfig(epochs=1))                 # doctest: +SKIP
        >>> len(res.ensemble), res.epochs                                      # doctest: +SKIP
        (3, 1.0)
    """
    objective = MIMOLoss(batch_repetitions, input_sharing)
    seed = derive_seed(cfg.seed, _SEED_STREAM, 0) % (2**31)
    base = make_model(model, data.input_shape, data.num_classes, seed=cfg.seed)
    if not isinstance(model, str):
        _check_output_layer(base, data.input_shape)
    model = to_mimo(base, members, input_shape=data.input_shape, seed=seed)
    # No val=: fit's validation accuracy expects (B, C) logits, this model returns (M, B, C).
    res = fit(model, data.train, cfg, augment=data.augment, device=device, progress=progress, desc="mimo",
              objective=objective, checkpoint_dir=stage_dir(workdir, "mimo"))
    # Counted on a copy: a training-mode step would move the trained BatchNorm statistics.
    flops = training_flops(copy.deepcopy(model), data, cfg.batch_size, cfg.epochs * len(data.train),
                           objective=objective)
    info = [{"member": i, "batch_repetitions": batch_repetitions, "input_sharing": input_sharing}
            for i in range(members)]
    return BaselineResult(MultiOutputEnsemble(model), float(cfg.epochs), res.seconds, flops,
                          members=info, history=res.history)



def rebuild(record: dict) -> MultiOutputEnsemble:
    """The untrained MIMO network a stored record describes (see baselines/storage.py)."""
    shape = tuple(record["input_shape"])
    model = build_model(record["model"], shape, int(record["num_classes"]))
    return MultiOutputEnsemble(to_mimo(model, (record.get("options") or {})["members"], input_shape=shape))


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "mimo", "title": "MIMO", "function": "mimo",
     "summary": "M inputs and heads, the budget's epochs", "members": 3,
     "options": {"batch_repetitions": "batch_repetitions", "input_sharing": "input_sharing"},
     "rebuild": "rebuild"},
]


__all__ = ["MIMO", "MIMOLoss", "mimo", "mimo_indices", "to_mimo"]
