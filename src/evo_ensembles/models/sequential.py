"""A layer-by-layer view of the library's models, for methods that cut a network in two
(TreeNet's shared trunk and replicated branches).

:func:`as_sequential` returns an ``nn.Sequential`` that computes exactly the model's function
and holds the model's own modules (no copies: training the view trains the model). Its
children are named after the original modules, so a split point is named the way the model
names it (``"conv2"``, ``"layer2"``, ``"fc2"``); parameter-free modules a model applies more
than once (LeNet's one ``relu`` and ``pool``) appear once per use, numbered in order of use.

==================  ========================================================================
model               children of the view
==================  ========================================================================
``LeNet``           conv1 relu1 pool1 drop1 conv2 relu2 pool2 drop2 flatten fc1 relu3 drop3
                    fc2 relu4 drop4 fc3
``ResNet``          conv1 bn1 relu layer1 … layerN avgpool flatten fc
``WideResNet``      conv1 block1 block2 block3 bn relu avgpool flatten fc
``MLP`` (and any    the model itself (flatten fc1 relu1 [drop1] fc2 …)
``nn.Sequential``)
==================  ========================================================================

Examples:
    >>> import torch
    >>> from evo_ensembles.models import build_model
    >>> net = build_model("resnet-8", (1, 28, 28), 10, seed=0).eval()
    >>> seq = as_sequential(net)
    >>> split_points(seq)[:5]
    ['conv1', 'bn1', 'relu', 'layer1', 'layer2']
    >>> x = torch.randn(2, 1, 28, 28)
    >>> torch.equal(seq(x), net(x)), seq.fc is net.fc
    (True, True)
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..errors import UserError
from .lenet import LeNet
from .resnet import ResNet
from .wrn import WideResNet

SUPPORTED = "the library's LeNet, ResNet, WideResNet and MLP, or any nn.Sequential"


def _lenet(m: LeNet) -> OrderedDict[str, nn.Module]:
    # Mirrors LeNet.forward; relu and pool are one module each there, used at every block.
    return OrderedDict([
        ("conv1", m.conv1), ("relu1", m.relu), ("pool1", m.pool), ("drop1", m.drop1),
        ("conv2", m.conv2), ("relu2", m.relu), ("pool2", m.pool), ("drop2", m.drop2),
        ("flatten", m.flatten),
        ("fc1", m.fc1), ("relu3", m.relu), ("drop3", m.drop3),
        ("fc2", m.fc2), ("relu4", m.relu), ("drop4", m.drop4),
        ("fc3", m.fc3),
    ])


def _resnet(m: ResNet) -> OrderedDict[str, nn.Module]:
    # Mirrors ResNet.forward; torch.flatten(x, 1) is nn.Flatten() (start_dim=1).
    layers = [(f"layer{i + 1}", getattr(m, f"layer{i + 1}")) for i in range(m.num_stages)]
    return OrderedDict([("conv1", m.conv1), ("bn1", m.bn1), ("relu", m.relu), *layers,
                        ("avgpool", m.avgpool), ("flatten", nn.Flatten()), ("fc", m.fc)])


def _wrn(m: WideResNet) -> OrderedDict[str, nn.Module]:
    # Mirrors WideResNet.forward: the final BN-ReLU comes after the last block.
    return OrderedDict([("conv1", m.conv1), ("block1", m.block1), ("block2", m.block2),
                        ("block3", m.block3), ("bn", m.bn), ("relu", m.relu),
                        ("avgpool", m.avgpool), ("flatten", nn.Flatten()), ("fc", m.fc)])


def as_sequential(model: nn.Module) -> nn.Sequential:
    """An ``nn.Sequential`` computing ``model``'s function with ``model``'s own modules.

    Raises:
        UserError: for a model class without a known layer order (the message lists the
            supported ones).

    Examples:
        >>> from evo_ensembles.models import build_model
        >>> seq = as_sequential(build_model("lenet-5", (1, 28, 28), 10))
        >>> split_points(seq)[4:6]
        ['conv2', 'relu2']
    """
    if isinstance(model, nn.Sequential):
        return model
    if isinstance(model, LeNet):
        return nn.Sequential(_lenet(model))
    if isinstance(model, ResNet):
        return nn.Sequential(_resnet(model))
    if isinstance(model, WideResNet):
        return nn.Sequential(_wrn(model))
    cls = type(model)
    raise UserError(f"no layer-by-layer view of {cls.__module__}.{cls.__qualname__}; supported: {SUPPORTED}")


def split_points(seq: nn.Sequential) -> list[str]:
    """The children's names of ``seq`` in order, repeated modules included (unlike
    ``named_children``, which lists a module used twice only once)."""
    return [n for n, _ in seq.named_modules(remove_duplicate=False) if n and "." not in n]


def split_at(seq: nn.Sequential, name: str) -> tuple[nn.Sequential, nn.Sequential]:
    """``(head, tail)``: the children before ``name`` and those from ``name`` on (sharing
    ``seq``'s modules); ``tail(head(x)) == seq(x)``.

    Examples:
        >>> from evo_ensembles.models import build_model
        >>> head, tail = split_at(as_sequential(build_model("mlp-8x2", (1, 4, 4), 3)), "fc2")
        >>> split_points(head), split_points(tail)
        (['flatten', 'fc1', 'relu1'], ['fc2', 'relu2', 'fc3'])
    """
    names = split_points(seq)
    if name not in names:
        raise UserError(f"no layer {name!r} to split at; the layers are: {', '.join(names)}")
    # Not seq[:i]: slicing rebuilds with seq's own class, which for MLP needs other arguments.
    layers = [(n, getattr(seq, n)) for n in names]
    i = names.index(name)
    return nn.Sequential(OrderedDict(layers[:i])), nn.Sequential(OrderedDict(layers[i:]))


__all__ = ["SUPPORTED", "as_sequential", "split_at", "split_points"]
