"""MinAtar games as gymnasium environments with float32 channels-first observations.

The ``minatar`` package ships a gymnasium ``BaseEnv`` (bool HWC frames); this wrapper turns
frames into float32 (C, 10, 10) so SB3 treats them as feature maps (not uint8 images) and
seeds the game through ``reset(seed=...)``.

Example:
    >>> env = make_minatar("breakout")
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, obs.dtype
    ((4, 10, 10), dtype('float32'))
"""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np

from ..errors import UnknownNameError

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


class MinAtarFloat(gym.ObservationWrapper):
    """Bool (H, W, C) → float32 (C, H, W)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(c, h, w), dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(observation, (2, 0, 1)), dtype=np.float32)


def make_minatar(game: str, *, sticky_action_prob: float = 0.1, minimal_actions: bool = True) -> gym.Env:
    """One MinAtar game (sticky actions 0.1 and difficulty ramping, as in the MinAtar paper)."""
    if game not in MINATAR_GAMES:
        raise UnknownNameError(f"unknown MinAtar game {game!r}; choose from {', '.join(MINATAR_GAMES)}")
    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # seaborn warning on import
    try:
        from minatar.gym import BaseEnv
    finally:
        logging.getLogger().disabled = was
    env = BaseEnv(game, use_minimal_action_set=minimal_actions, sticky_action_prob=sticky_action_prob)
    return MinAtarFloat(env)
