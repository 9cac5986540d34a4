"""CIFAR-style ResNets (3×3 stem, no max-pool, so 32×32 and 28×28 inputs keep their detail).

Two families, both built from :class:`BasicBlock`:

* ``resnet-18`` / ``resnet-34`` — four stages 64-128-256-512 with ``[2,2,2,2]`` /
  ``[3,4,6,3]`` blocks and 1×1-conv + BN projection shortcuts (the common CIFAR port of
  He et al.'s ImageNet ResNet; 11,173,962 parameters for CIFAR-10).
* ``resnet-<6n+2>`` (``resnet-8``, ``resnet-20``, ``resnet-32``, ``resnet-56``, …) — He et
  al. 2016's CIFAR networks: three stages 16-32-64 with ``n`` blocks each and
  parameter-free "option A" shortcuts (stride-2 subsample + zero-padded channels);
  ``resnet-20`` has 269,722 parameters for CIFAR-10. Cheap enough to train on a CPU.

Global average pooling makes every variant independent of the input's height and width.
With ``dropout > 0`` each block applies ``nn.Dropout`` between its two convs (MC-dropout
style, as in wide ResNets).

Examples:
    >>> import torch
    >>> net = cifar_resnet(20, (3, 32, 32), 10)
    >>> sum(p.numel() for p in net.parameters())
    269722
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

# Depth → blocks per stage for the four-stage (ImageNet-layout) variants.
IMAGENET_STYLE_STAGES: dict[int, tuple[int, ...]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}



def kaiming_init_(model: nn.Module, *, zero_linear_bias: bool = False) -> None:
    """Residual-net initialisation: Kaiming-normal (fan-out, ReLU) convs, BN = (1, 0), default
    Linear (optionally with a zero bias)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
            if zero_linear_bias:
                nn.init.zeros_(m.bias)

class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: subsample by ``stride`` and zero-pad new channels.

    It has no parameters, which is why the CIFAR ResNets stay at ~0.27M weights.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU (→ Dropout) → conv3×3 → BN, plus shortcut, then ReLU.

    ``shortcut`` picks the downsampling path when the shape changes: ``"conv"`` (1×1 conv +
    BN) or ``"pad"`` (parameter-free, :class:`PadShortcut`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        shortcut: str = "conv",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "pad":
                self.shortcut = PadShortcut(in_channels, out_channels, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet: 3×3 stem conv, stages of :class:`BasicBlock`, avg-pool, ``fc``.

    Args:
        input_shape: ``(C, H, W)``; only ``C`` matters (global pooling handles any H, W).
        num_classes: number of output logits.
        stages: blocks per stage; stage ``i > 0`` starts with a stride-2 block.
        widths: channels per stage (the stem has ``widths[0]`` channels).
        shortcut: ``"conv"`` (projection) or ``"pad"`` (option A).
        dropout: probability of the in-block dropout; 0 adds no Dropout modules.

    Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, …, ``fc``).

    Examples:
        >>> net = ResNet((1, 28, 28), 10, stages=(1, 1), widths=(8, 16))
        >>> net.fc
        Linear(in_features=16, out_features=10, bias=True)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        stages: Sequence[int],
        widths: Sequence[int],
        shortcut: str = "conv",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(stages) != len(widths) or not stages or min(stages) < 1 or min(widths) < 1:
            raise UserError(f"ResNet needs matching positive stages/widths, got {stages}/{widths}")
        if shortcut not in ("conv", "pad"):
            raise UserError(f"shortcut must be 'conv' or 'pad', got {shortcut!r}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        in_ch = int(widths[0])
        self.conv1 = nn.Conv2d(self.input_shape[0], in_ch, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        for i, (n_blocks, width) in enumerate(zip(stages, widths, strict=True)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, width, stride, shortcut=shortcut, dropout=dropout))
                in_ch = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, self.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out, ReLU) convs and BN = (1, 0), as torchvision does."""
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18_cifar(
    input_shape: Sequence[int], num_classes: int, *, depth: int = 18, dropout: float = 0.0
) -> ResNet:
    """ResNet-18/34 with a 3×3 stem and no max-pool (widths 64-128-256-512).

    Examples:
        >>> resnet18_cifar((3, 32, 32), 10).fc.in_features
        512
    """
    if depth not in IMAGENET_STYLE_STAGES:
        raise UserError(f"four-stage ResNet depth must be 18 or 34, got {depth}")
    return ResNet(
        input_shape,
        num_classes,
        stages=IMAGENET_STYLE_STAGES[depth],
        widths=(64, 128, 256, 512),
        shortcut="conv",
        dropout=dropout,
    )


def cifar_resnet(
    depth: int, input_shape: Sequence[int], num_classes: int, *, dropout: float = 0.0
) -> ResNet:
    """He et al.'s CIFAR ResNet of ``depth = 6n + 2`` layers (16-32-64, option-A shortcuts).

    Examples:
        >>> [len(cifar_resnet(8, (3, 32, 32), 10).layer1)]
        [1]
    """
    if depth < 8 or (depth - 2) % 6 != 0:
        raise UserError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, …), got {depth}")
    n = (depth - 2) // 6
    return ResNet(
        input_shape,
        num_classes,
        stages=(n, n, n),
        widths=(16, 32, 64),
        shortcut="pad",
        dropout=dropout,
    )
