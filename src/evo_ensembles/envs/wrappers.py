"""Observation wrappers shared by the environment families."""

from __future__ import annotations

from typing import cast

import gymnasium as gym
import numpy as np


class ChannelsFirstFloat(gym.ObservationWrapper):
    """(H, W, C) frames of 0/1 values (bool or uint8) → float32 (C, H, W) in [0, 1].

    SB3 would take a uint8 (H, W, C) box for a camera image and divide it by 255; these
    frames are feature maps (MinAtar's channels, MiniGrid's one-hot view), so they are
    handed over as floats, channels first.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        # An image-like Box: its shape is (H, W, C), never None.
        h, w, c = cast("tuple[int, int, int]", env.observation_space.shape)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(c, h, w), dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (2, 0, 1)), dtype=np.float32)


__all__ = ["ChannelsFirstFloat"]
