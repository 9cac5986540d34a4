"""Multilayer perceptrons (the paper's MNIST MotherNets comparison uses a 64-unit MLP).

Registry names (see :mod:`evo_ensembles.models.registry`):

* ``mlp``             — 3 hidden layers of 512 units (:data:`DEFAULT_MLP_HIDDEN`)
* ``mlp-<w>``         — one hidden layer of ``w`` units, e.g. ``mlp-64`` (SPEC §3)
* ``mlp-<w>x<d>``     — ``d`` hidden layers of ``w`` units, e.g. ``mlp-256x2``

Examples:
    >>> import torch
    >>> net = MLP((1, 28, 28), 10, hidden=(64,))
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> [name for name, _ in net.named_children()]
    ['flatten', 'fc1', 'relu1', 'fc2']
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..errors import UserError

DEFAULT_MLP_HIDDEN: tuple[int, ...] = (512, 512, 512)


class MLP(nn.Sequential):
    """Flatten → [Linear → ReLU (→ Dropout)] × len(hidden) → Linear; returns logits.

    Layers are named ``fc1 … fc{n+1}`` (the last is the output layer), ``relu<i>`` and
    ``drop<i>`` so parameter names read like LeNet's (``fc1.weight``, …). There is no
    BatchNorm; every weight is an ordinary ``nn.Linear``.

    Args:
        input_shape: ``(C, H, W)``; the input layer has ``C*H*W`` inputs.
        num_classes: number of output logits.
        hidden: hidden-layer widths, input side first; may be empty (logistic regression).
        dropout: if > 0, ``nn.Dropout(dropout)`` after every hidden activation.

    Examples:
        >>> net = MLP((3, 32, 32), 10, hidden=(32, 32), dropout=0.5)
        >>> sum(isinstance(m, nn.Dropout) for m in net)
        2
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        hidden: Sequence[int] = DEFAULT_MLP_HIDDEN,
        dropout: float = 0.0,
    ) -> None:
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise UserError(f"MLP hidden widths must be positive, got {hidden}")
        in_features = math.prod(int(s) for s in input_shape)
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        for i, width in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(in_features, width)
            layers[f"relu{i}"] = nn.ReLU()
            if dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(dropout)
            in_features = width
        layers[f"fc{len(hidden) + 1}"] = nn.Linear(in_features, int(num_classes))
        super().__init__(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.hidden = hidden
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming (fan-in, ReLU) for hidden layers, fan-in linear for the output; zero biases.

        Fan-in keeps activation scale constant through the ReLU stack (no BatchNorm here).
        """
        linears = [m for m in self if isinstance(m, nn.Linear)]
        for i, m in enumerate(linears):
            last = i == len(linears) - 1
            nn.init.kaiming_normal_(
                m.weight, mode="fan_in", nonlinearity="linear" if last else "relu"
            )
            nn.init.zeros_(m.bias)
