"""Environments: ProcGen (gym3 → SB3 VecEnv), MiniGrid, MinAtar and gymnasium ids behind one factory."""

from . import _quiet_gym  # noqa: F401  (must precede SB3 and procgen)
from .factory import FAMILIES, LEVEL_FAMILIES, EnvId, make_vec_env, parse_env_id
from .minatar import MINATAR_GAMES, make_minatar
from .minigrid import make_minigrid
from .procgen import PROCGEN_GAMES, ProcgenVecEnv

__all__ = ["FAMILIES", "LEVEL_FAMILIES", "MINATAR_GAMES", "PROCGEN_GAMES", "EnvId", "ProcgenVecEnv",
           "make_minatar", "make_minigrid", "make_vec_env", "parse_env_id"]
