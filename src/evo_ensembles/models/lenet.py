"""LeNet-5 and its wider variants LeNet-S/M/L (SPEC §3, dissertation §5.3.1).

All four share the LeNet-5 layout::

    conv5x5(c1) → relu → maxpool2 → conv5x5(c2) → relu → maxpool2
    → fc(h1) → relu → fc(h2) → relu → fc(num_classes)

The paper only gives LeNet-S/M/L's parameter counts on CIFAR (3×32×32, 10 classes):
253,290 / 1,007,306 / 4,017,546. Solving the count formula for widths, the one family where
M doubles every width of S and L doubles M again (the paper's ×4 steps) is:

=========  ===  ===  ====  ===  =====================  ==========================
name       c1   c2   h1    h2   CIFAR-10 (3×32×32)      Fashion-MNIST (1×28×28)
=========  ===  ===  ====  ===  =====================  ==========================
lenet-5     6   16    120   84       62,006                  44,426
lenet-s    16   32    256  128      253,290                 178,762
lenet-m    32   64    512  256    1,007,306                 710,794
lenet-l    64  128   1024  512    4,017,546               2,834,698
=========  ===  ===  ====  ===  =====================  ==========================

Examples:
    >>> import torch
    >>> net = LeNet((3, 32, 32), 10, widths=LENET_WIDTHS["lenet-s"])
    >>> sum(p.numel() for p in net.parameters())
    253290
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import UserError

# (conv1 channels, conv2 channels, fc1 units, fc2 units); see the table above.
LENET_WIDTHS: dict[str, tuple[int, int, int, int]] = {
    "lenet-5": (6, 16, 120, 84),
    "lenet-s": (16, 32, 256, 128),
    "lenet-m": (32, 64, 512, 256),
    "lenet-l": (64, 128, 1024, 512),
}

_KERNEL = 5


def _after_block(size: int) -> int:
    """Spatial size after a valid 5×5 conv and a 2×2 max-pool (floor, as torch does)."""
    return (size - _KERNEL + 1) // 2


class LeNet(nn.Module):
    """LeNet-5 layout with configurable widths; returns logits.

    Args:
        input_shape: ``(C, H, W)`` of one input; the flattened size for ``fc1`` is computed
            from it, so 1×28×28 and 3×32×32 inputs both work.
        num_classes: number of output logits.
        widths: ``(c1, c2, h1, h2)``; default is classic LeNet-5 ``(6, 16, 120, 84)``.
        dropout: if > 0, ``nn.Dropout(dropout)`` after every hidden layer (both conv blocks
            and both hidden fc layers) — the paper's "Dropout" baseline.

    Every weight lives in a plain ``nn.Conv2d``/``nn.Linear`` named ``conv1, conv2, fc1,
    fc2, fc3`` (``fc3`` is the output layer), so mask code finds them by module type and
    can exclude the output layer by the ``"fc3"`` prefix. There is no BatchNorm.

    Examples:
        >>> net = LeNet((1, 28, 28), 10, dropout=0.5)
        >>> sum(isinstance(m, nn.Dropout) for m in net.modules())
        4
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        widths: Sequence[int] = LENET_WIDTHS["lenet-5"],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != 4 or any(int(w) < 1 for w in widths):
            raise UserError(f"LeNet widths must be 4 positive ints (c1, c2, h1, h2), got {widths}")
        c, h, w = (int(s) for s in input_shape)
        c1, c2, h1, h2 = (int(x) for x in widths)
        out_h, out_w = _after_block(_after_block(h)), _after_block(_after_block(w))
        if out_h < 1 or out_w < 1:
            raise UserError(
                f"LeNet needs inputs of at least 16×16 pixels (two 5×5 convs and two 2×2 "
                f"pools), got input_shape {tuple(input_shape)}"
            )
        self.input_shape = (c, h, w)
        self.num_classes = int(num_classes)
        self.widths = (c1, c2, h1, h2)

        self.conv1 = nn.Conv2d(c, c1, _KERNEL)
        self.conv2 = nn.Conv2d(c1, c2, _KERNEL)
        self.fc1 = nn.Linear(c2 * out_h * out_w, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, self.num_classes)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        # Identity when p = 0 so a plain model holds no Dropout modules at all.
        # Dropout goes after the pool of each conv block: dropping before a max-pool is
        # largely undone by the max, so the pooled map is the conv layer's real output.
        self.drop1, self.drop2, self.drop3, self.drop4 = (
            nn.Dropout(dropout) if dropout > 0 else nn.Identity() for _ in range(4)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming (fan-in, ReLU) for every layer, zero biases.

        Fan-in rather than torchvision's fan-out: without BatchNorm the forward signal's
        scale must be preserved layer to layer, which fan-in does.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:  # every layer here is built with a bias
                    nn.init.zeros_(m.bias)
        # Output layer: plain fan-in scaling (no ReLU follows) keeps initial logits small.
        nn.init.kaiming_normal_(self.fc3.weight, mode="fan_in", nonlinearity="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.pool(self.relu(self.conv1(x))))
        x = self.drop2(self.pool(self.relu(self.conv2(x))))
        x = self.flatten(x)
        x = self.drop3(self.relu(self.fc1(x)))
        x = self.drop4(self.relu(self.fc2(x)))
        return self.fc3(x)
