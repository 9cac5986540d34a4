"""One factory for every environment family: ``procgen:<game>``, ``minigrid:<id>``,
``minatar:<game>``, ``gym:<id>``.

The standard wrapper stack (SB3 wrappers, no re-implementation):
``VecMonitor`` (raw episode returns and lengths, before any normalisation) →
``VecNormalize`` (rewards; observations only when asked, for low-dimensional states such as
MountainCar's) → ``VecFrameStack``. ProcGen defaults to reward normalisation and 2 stacked
frames (the paper's Table 4.2); MiniGrid, MinAtar and gymnasium ids default to neither.
Presets can change all three.

Levels: ProcGen and MiniGrid generate each episode's layout from a *level* seed, and
``num_levels``/``start_level`` choose the level set (``num_levels=0``: unlimited), as
ProcGen's own flags do (:data:`LEVEL_FAMILIES`). The other families have no levels.

Examples:
    >>> env = make_vec_env("gym:CartPole-v1", num_envs=2, seed=0)
    >>> env.reset().shape
    (2, 4)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import gymnasium as gym
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecEnv,
    VecFrameStack,
    VecMonitor,
    VecNormalize,
)

from ..checks import check_positive_int
from ..errors import UnknownNameError, UserError
from .minatar import MINATAR_GAMES, make_minatar
from .procgen import PROCGEN_GAMES, ProcgenVecEnv

FAMILIES = ("procgen", "minigrid", "minatar", "gym")
LEVEL_FAMILIES = ("procgen", "minigrid")  # families whose episodes are drawn from a level set


@dataclass(frozen=True)
class EnvId:
    """A parsed environment id: ``family`` and ``name`` (game or gymnasium id)."""

    family: str
    name: str

    def __str__(self) -> str:
        return f"{self.family}:{self.name}"


def parse_env_id(env_id: str) -> EnvId:
    """``"procgen:starpilot"`` → EnvId("procgen", "starpilot"); unknown ids raise a UserError.

    MiniGrid ids may be given in full (``minigrid:MiniGrid-DoorKey-6x6-v0``) or short
    (``minigrid:DoorKey-6x6``); the EnvId holds the full gymnasium id.
    """
    family, sep, name = str(env_id).partition(":")
    if not sep or family not in FAMILIES or not name:
        raise UnknownNameError(f"unknown environment {env_id!r}; use procgen:<game>, minigrid:<id>, "
                               "minatar:<game> or gym:<gymnasium id>, e.g. procgen:starpilot, "
                               "minigrid:MiniGrid-DoorKey-6x6-v0, minatar:breakout, gym:CartPole-v1")
    if family == "procgen" and name not in PROCGEN_GAMES:
        raise UnknownNameError(f"unknown ProcGen game {name!r}; choose from {', '.join(PROCGEN_GAMES)}")
    if family == "minatar" and name not in MINATAR_GAMES:
        raise UnknownNameError(f"unknown MinAtar game {name!r}; choose from {', '.join(MINATAR_GAMES)}")
    if family == "minigrid":
        from .minigrid import resolve_minigrid_id

        name = resolve_minigrid_id(name)
    if family == "gym" and name not in gym.registry:
        raise UnknownNameError(f"unknown gymnasium environment {name!r}")
    return EnvId(family, name)


def make_vec_env(
    env_id: str | EnvId,
    num_envs: int = 1,
    seed: int = 0,
    *,
    frame_stack: int | None = None,
    normalize_reward: bool | None = None,
    normalize_obs: bool = False,
    gamma: float = 0.99,
    distribution_mode: str = "easy",
    num_levels: int = 0,
    start_level: int = 0,
    procgen_options: dict | None = None,
    max_episode_steps: int | None = None,
) -> VecEnv:
    """Build ``num_envs`` copies of ``env_id`` with the standard wrapper stack.

    ``seed`` seeds ProcGen's level sampling (``rand_seed``) or each gymnasium copy
    (``seed + i``). ``frame_stack``/``normalize_reward`` default per family (see module doc).
    ``normalize_obs`` standardises observations with running statistics (``VecNormalize``);
    evaluation loads the training statistics and freezes them. ``num_levels``/``start_level``
    choose the level set of ProcGen and MiniGrid (ignored by families without levels).
    ``max_episode_steps`` caps MinAtar/gym episodes (gymnasium ``TimeLimit``).
    """
    eid = env_id if isinstance(env_id, EnvId) else parse_env_id(env_id)
    check_positive_int(num_envs, "num_envs")
    is_procgen = eid.family == "procgen"
    frame_stack = (2 if is_procgen else 1) if frame_stack is None else frame_stack
    normalize_reward = is_procgen if normalize_reward is None else normalize_reward
    if is_procgen:
        venv: VecEnv = ProcgenVecEnv(eid.name, num_envs, distribution_mode=distribution_mode, num_levels=num_levels,
                                     start_level=start_level, rand_seed=seed, **(procgen_options or {}))
    else:
        def thunk(i: int):
            def make() -> gym.Env:
                if eid.family == "minigrid":
                    from .minigrid import make_minigrid

                    env = make_minigrid(eid.name, num_levels=num_levels, start_level=start_level, encode=False)
                else:
                    env = make_minatar(eid.name) if eid.family == "minatar" else gym.make(eid.name)
                if max_episode_steps:
                    env = gym.wrappers.TimeLimit(env, max_episode_steps)
                env.reset(seed=seed + i)
                env.action_space.seed(seed + i)
                return env
            return make

        if eid.family == "minigrid":
            from .minigrid import MiniGridVecEnv, VecOneHot

            venv = VecOneHot(MiniGridVecEnv([thunk(i) for i in range(num_envs)]))
            venv.venv.seed(seed)
        else:
            venv = DummyVecEnv([thunk(i) for i in range(num_envs)])
            venv.seed(seed)
    venv = VecMonitor(venv)
    if normalize_reward or normalize_obs:
        if normalize_obs and is_procgen:
            raise UserError("observation normalisation is for low-dimensional states, not ProcGen images")
        venv = VecNormalize(venv, norm_obs=normalize_obs, norm_reward=normalize_reward, gamma=gamma)
    if frame_stack > 1:
        venv = VecFrameStack(venv, frame_stack)
    return venv


def quiet_terminal_observation_warning() -> None:
    """ProcGen cannot give terminal observations (see envs.procgen); SB3's frame stack warns."""
    warnings.filterwarnings("ignore", message="VecFrameStack wrapping a VecEnv without terminal_observation")


quiet_terminal_observation_warning()
