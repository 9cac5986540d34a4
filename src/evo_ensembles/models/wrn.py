"""Wide ResNets, ``wrn-<depth>-<width>`` (Zagoruyko & Komodakis 2016).

The paper's large-budget recipe uses WRN-28-10 on CIFAR-10 (SPEC §3). Layout: 3×3 stem
conv (16 channels), three stages of ``n = (depth - 4) / 6`` pre-activation blocks with
``16k, 32k, 64k`` channels (``k`` = width), BN → ReLU → global average pool → ``fc``.
With ``dropout > 0`` each block applies ``nn.Dropout`` between its two convs, as in the
original WRN (this is also the "MC Dropout" baseline of Table 5.2).

Parameter counts for CIFAR-10: WRN-28-10 36,479,194; WRN-16-4 2,748,890.

Examples:
    >>> import torch
    >>> net = WideResNet((3, 32, 32), 10, depth=10, width=1)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_positive_int
from ..errors import UserError
from .resnet import kaiming_init_


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN → ReLU → conv3×3 → BN → ReLU (→ Dropout) → conv3×3 (+ shortcut).

    When the shape changes the shortcut is a 1×1 conv applied to the *pre-activated* input,
    as in the reference implementation (so both paths see normalised features).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.equal_in_out = in_channels == out_channels and stride == 1
        self.shortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        identity = x if self.shortcut is None else self.shortcut(pre)
        return out + identity


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` for small images; returns logits.

    Args:
        input_shape: ``(C, H, W)``; only ``C`` matters (global pooling handles any H, W).
        num_classes: number of output logits.
        depth: total depth; ``(depth - 4) % 6 == 0`` (10, 16, 22, 28, 40, …).
        width: widening factor ``k >= 1``.
        dropout: probability of the in-block dropout; 0 adds no Dropout modules.

    Examples:
        >>> WideResNet((1, 28, 28), 10, depth=16, width=4).fc.in_features
        256
    """

    # The three stages are registered with ``add_module`` in ``__init__``.
    block1: nn.Sequential
    block2: nn.Sequential
    block3: nn.Sequential

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 28,
        width: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise UserError(
                f"WRN depth must satisfy (depth - 4) % 6 == 0 and depth >= 10 "
                f"(10, 16, 22, 28, 40, …), got {depth}"
            )
        check_positive_int(width, "WRN width (widening factor)")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.depth, self.width = int(depth), int(width)
        n = (depth - 4) // 6
        channels = (16, 16 * width, 32 * width, 64 * width)

        self.conv1 = nn.Conv2d(self.input_shape[0], channels[0], 3, 1, 1, bias=False)
        in_ch = channels[0]
        for i, out_ch in enumerate(channels[1:]):
            stride = 1 if i == 0 else 2
            blocks = [
                WideBasicBlock(
                    in_ch if j == 0 else out_ch, out_ch, stride if j == 0 else 1, dropout=dropout
                )
                for j in range(n)
            ]
            self.add_module(f"block{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, self.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out, ReLU) convs, BN = (1, 0), zero fc bias (reference WRN)."""
        kaiming_init_(self, zero_linear_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.block3(self.block2(self.block1(x)))
        x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))
