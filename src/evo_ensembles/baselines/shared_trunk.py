"""TreeNet (Lee et al. 2015, "Why M heads are better than one: training a diverse ensemble
of deep networks"): M members that share their first layers.

The network is cut at a split point: the layers before it form one shared *trunk*, the
layers from it on are replicated into M *branches* with independent initialisations. One
forward computes the trunk once and every branch on its output; training minimises the sum
of the branches' cross-entropies (:func:`~evo_ensembles.baselines.common.members_cross_entropy`),
so the trunk's gradient is the sum of what every branch asks of it. Split at the first layer
and nothing is shared (a jointly trained deep ensemble); split at the output layer and only
the classifiers differ.

Default split points (:data:`DEFAULT_SPLITS`), after the first block of each family, where
Lee et al. found sharing the low-level layers costs little accuracy:

=============  ==========  ============================================================
model          split       shared trunk
=============  ==========  ============================================================
LeNet          ``conv2``   conv1 → relu → pool (→ dropout): the first conv block
ResNet         ``layer2``  stem conv-BN-ReLU and the first stage
WideResNet     ``block2``  stem conv and the first stage
MLP            ``fc2``     the first hidden layer
=============  ==========  ============================================================

Examples:
    >>> import torch
    >>> net = treenet_model("lenet-5", (1, 28, 28), 10, members=3, seed=0)
    >>> net(torch.zeros(4, 1, 28, 28)).shape
    torch.Size([3, 4, 10])
    >>> from evo_ensembles import load_dataset, TrainConfig
    >>> data = load_dataset("fashion-mnist", subset=512)                    # doctest: +SKIP
    >>> res = treenet("lenet-5", data, TrainConfig(epochs=1), members=3)   # doctest: +SKIP
    >>> len(res.ensemble), res.epochs                                      # doctest: +SKIP
    (3, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..checks import check_positive_int
from ..data import DataSplits
from ..errors import UserError
from ..models import MLP, LeNet, ModelSource, ResNet, WideResNet, make_model
from ..models.sequential import as_sequential, split_at
from ..subnet import derive_seed
from ..train import TrainConfig, fit
from .common import (
    BaselineResult,
    MultiOutputEnsemble,
    members_cross_entropy,
    stage_dir,
    training_flops,
)

DEFAULT_SPLITS: dict[type, str] = {LeNet: "conv2", ResNet: "layer2", WideResNet: "block2", MLP: "fc2"}
"""The default split point per model family (see the module docstring)."""

_STREAM = 0x7EE  # derive_seed stream of TreeNet's initialisations


class TreeNet(nn.Module):
    """A shared ``trunk`` and ``M`` ``branches``; ``forward`` returns (M, B, C) logits.

    The trunk runs once per forward and every branch reads its output, so branches must
    not modify their input in place (:func:`treenet_model` sees to that).

    Examples:
        >>> import torch
        >>> net = TreeNet(nn.Linear(4, 8), [nn.Linear(8, 3) for _ in range(2)])
        >>> net.members, net(torch.zeros(5, 4)).shape
        (2, torch.Size([2, 5, 3]))
    """

    def __init__(self, trunk: nn.Module, branches: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(branches) < 1:
            raise UserError("a TreeNet needs at least one branch")
        self.trunk = trunk
        self.branches = nn.ModuleList(branches)
        self.members = len(self.branches)
        self.split: str | None = None  # the layer name it was cut at, when known

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return torch.stack([branch(h) for branch in self.branches])


def default_split(model: nn.Module) -> str:
    """The default split point of ``model``'s family (:data:`DEFAULT_SPLITS`)."""
    for cls, name in DEFAULT_SPLITS.items():
        if isinstance(model, cls):
            if cls is MLP and len(cast(MLP, model).hidden) == 0:
                return "fc1"  # logistic regression: nothing to share but the flatten
            return name
    raise UserError(f"TreeNet has no default split for a {type(model).__name__}; give split=")


def _safe_entry(branch: nn.Sequential) -> nn.Sequential:
    """``branch`` whose first layer does not overwrite its input: every branch reads the one
    trunk output, so an in-place ReLU there would feed the next branch a changed tensor."""
    first = branch[0]
    if isinstance(first, nn.ReLU) and first.inplace:
        branch[0] = nn.ReLU()
    return branch


def treenet_model(model: ModelSource,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    members: int = 3,
    split: str | None = None,
    seed: int = 0,
) -> TreeNet:
    """A :class:`TreeNet` of ``model`` cut before the layer ``split`` (a layer name of
    :func:`~evo_ensembles.models.sequential.as_sequential`, e.g. ``"conv2"``; default
    :data:`DEFAULT_SPLITS`).

    The trunk is the first part of one model initialised from a seed derived from ``seed``;
    branch ``i`` is the rest of another model with its own derived seed, so every branch
    starts as that layer range of an independently initialised network.

    Examples:
        >>> net = treenet_model("mlp-16x2", (1, 8, 8), 3, members=2, split="fc3")
        >>> [n for n, _ in net.named_children()], len(net.branches[0])
        (['trunk', 'branches'], 1)
    """
    check_positive_int(members, "TreeNet members")

    def part(i: int) -> nn.Module:
        return make_model(model, input_shape, num_classes, seed=derive_seed(seed, _STREAM, i))

    first = part(0)
    if split is None:
        split = default_split(first)
    trunk, _ = split_at(as_sequential(first), split)
    branches = [_safe_entry(split_at(as_sequential(part(i + 1)), split)[1]) for i in range(members)]
    net = TreeNet(trunk, branches)
    net.split = split
    return net


def treenet(model: ModelSource,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    members: int = 3,
    split: str | None = None,
    device: str | torch.device = "auto",
    progress: bool = False,
    workdir: str | Path | None = None,
) -> BaselineResult:
    """Train a TreeNet of ``members`` branches for ``cfg.epochs`` on the sum of the branches'
    losses; the ensemble averages the branches' probabilities.

    One network trains once, so ``epochs`` is ``cfg.epochs``; its FLOPs are counted on the
    real step (trunk once, M branches).
    """
    model = treenet_model(model, data.input_shape, data.num_classes, members=members,
                          split=split, seed=cfg.seed)
    res = fit(model, data.train, cfg, augment=data.augment, device=device, progress=progress,
              desc="treenet", objective=members_cross_entropy,
              checkpoint_dir=stage_dir(workdir, "treenet"))
    flops = training_flops(model, data, cfg.batch_size, cfg.epochs * len(data.train),
                           objective=members_cross_entropy)
    notes = [{"branch": i, "split": model.split, "seed": derive_seed(cfg.seed, _STREAM, i + 1),
              "trunk_seed": derive_seed(cfg.seed, _STREAM, 0)} for i in range(members)]
    return BaselineResult(MultiOutputEnsemble(model), epochs=float(cfg.epochs), seconds=res.seconds,
                          training_flops=flops, members=notes, history=res.history)



def rebuild(record: dict) -> MultiOutputEnsemble:
    """The untrained TreeNet a stored record describes (see baselines/storage.py)."""
    opts = record.get("options") or {}
    return MultiOutputEnsemble(treenet_model(record["model"], tuple(record["input_shape"]),
                                             int(record["num_classes"]), members=opts["members"],
                                             split=opts.get("split")))


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "treenet", "title": "TreeNet", "function": "treenet",
     "summary": "shared trunk, M branches, the budget's epochs", "members": 3,
     "options": {"split": "split"}, "rebuild": "rebuild"},
]


__all__ = ["DEFAULT_SPLITS", "TreeNet", "default_split", "treenet", "treenet_model"]
