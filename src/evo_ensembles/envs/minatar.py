"""MinAtar games as gymnasium environments with float32 channels-first observations.

The ``minatar`` package ships a gymnasium ``BaseEnv`` (bool HWC frames); this wrapper turns
frames into float32 (C, 10, 10) so SB3 treats them as feature maps (not uint8 images) and
seeds the game through ``reset(seed=...)``.

Examples:
    >>> env = make_minatar("breakout")
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, obs.dtype
    ((4, 10, 10), dtype('float32'))
"""

from __future__ import annotations

import logging

import gymnasium as gym

from ..errors import UnknownNameError
from .wrappers import ChannelsFirstFloat

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


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
    return ChannelsFirstFloat(env)
