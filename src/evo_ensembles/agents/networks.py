"""Feature extractors for SB3 policies: the Impala CNN (ProcGen) and a small CNN (MinAtar).

The Impala CNN (Espeholt et al. 2018, as in the ProcGen baselines): for each depth d in
``channels``: conv 3×3 (d) → max-pool 3×3 stride 2 → two residual blocks
(ReLU → conv → ReLU → conv, plus the input); then ReLU → flatten → linear (256) → ReLU.
With ``[32, 64, 128]`` (the paper's 15 layers) and ``[16, 32, 32]`` (the ProcGen
baselines). Policies built by :mod:`evo_ensembles.agents.presets` use ``net_arch`` with
no hidden layers, so the action and value heads are single linear layers on these features.

Examples:
    >>> import gymnasium as gym, numpy as np, torch
    >>> space = gym.spaces.Box(0, 255, (6, 64, 64), np.uint8)
    >>> net = ImpalaCNN(space, channels=(16, 32, 32))
    >>> net(torch.zeros(2, 6, 64, 64)).shape
    torch.Size([2, 256])
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaStack(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0, self.res1 = ResidualBlock(out_channels), ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(BaseFeaturesExtractor):
    """Impala CNN features (channels-first input, already scaled to [0, 1] by SB3)."""

    def __init__(self, observation_space: gym.spaces.Box, channels: Sequence[int] = (32, 64, 128),
                 features_dim: int = 256) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        stacks, depth = [], c
        for d in channels:
            stacks.append(ImpalaStack(depth, d))
            depth = d
        self.stacks = nn.Sequential(*stacks)
        with torch.no_grad():
            n = self.stacks(torch.zeros(1, c, h, w)).numel()
        self.fc = nn.Linear(n, features_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stacks(obs)).flatten(1)
        return torch.relu(self.fc(x))


class MinAtarCNN(BaseFeaturesExtractor):
    """The MinAtar paper's network body: conv 3×3 (16) → ReLU → flatten → linear (128) → ReLU."""

    def __init__(self, observation_space: gym.spaces.Box, channels: int = 16, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        self.conv = nn.Conv2d(c, channels, 3)
        self.fc = nn.Linear(channels * (h - 2) * (w - 2), features_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(torch.relu(self.conv(obs)).flatten(1)))
