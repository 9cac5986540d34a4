"""Environments: ProcGen (gym3 → SB3 VecEnv), MinAtar and gymnasium ids behind one factory."""

from . import _quiet_gym  # noqa: F401  (must precede SB3 and procgen)
from .factory import FAMILIES, EnvId, make_vec_env, parse_env_id
from .minatar import MINATAR_GAMES, make_minatar
from .procgen import PROCGEN_GAMES, ProcgenVecEnv

__all__ = ["FAMILIES", "MINATAR_GAMES", "PROCGEN_GAMES", "EnvId", "ProcgenVecEnv", "make_minatar",
           "make_vec_env", "parse_env_id"]
