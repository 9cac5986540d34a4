"""ProcGen → stable-baselines3 ``VecEnv`` adapter over procgen's native gym3 environment.

gym3 steps all ``num_envs`` games at once and resets finished ones by itself: after
``act``, ``observe`` returns (reward, observation, first), where ``first[i]`` says the
observation already belongs to a *new* episode. SB3 wants (obs, reward, done, info) with
``done`` marking the step that ended an episode, which is exactly ``first``.

What gym3 cannot give: the true terminal observation. The final frame of an episode is
never returned (the game has already reset), so ``info["terminal_observation"]`` is *not*
set. SB3's PPO only needs it to bootstrap time-limit truncations, and ProcGen reports every
episode end — time-outs included — as a termination, so PPO is unaffected; wrappers that
warn about the missing key (VecFrameStack) are silenced by :func:`make_vec_env`.

Examples:
    >>> env = ProcgenVecEnv("coinrun", num_envs=2, rand_seed=0)     # doctest: +SKIP
    >>> obs = env.reset(); obs.shape, obs.dtype                      # doctest: +SKIP
    ((2, 64, 64, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from ..checks import check_known, check_nonneg_int, check_positive_int
from ..errors import UnknownNameError, UserError

PROCGEN_GAMES = ("bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball",
                 "fruitbot", "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot")
DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")
VISUAL_OPTIONS = ("center_agent", "use_backgrounds", "use_monochrome_assets", "restrict_themes",
                  "use_generated_assets", "paint_vel_info")


class ProcgenVecEnv(VecEnv):
    """``num_envs`` ProcGen games as one SB3 VecEnv (uint8 HWC frames, 15 discrete actions).

    Args:
        game: one of :data:`PROCGEN_GAMES`.
        num_envs: parallel games.
        distribution_mode: ``easy`` (the paper's and the baselines' setting), ``hard``, ...
        num_levels: the number of levels (``0``: unlimited levels).
        start_level: the first level of the set.
        rand_seed: seeds level sampling; the same seed replays the same levels.
        **visual: :data:`VISUAL_OPTIONS` (e.g. ``use_backgrounds=False``).
    """

    def __init__(self, game: str, num_envs: int = 1, *, distribution_mode: str = "easy",
                 num_levels: int = 0, start_level: int = 0, rand_seed: int | None = None,
                 num_threads: int = 1, **visual: Any) -> None:
        if game not in PROCGEN_GAMES:
            raise UnknownNameError(f"unknown ProcGen game {game!r}; choose from {', '.join(PROCGEN_GAMES)}")
        check_known(distribution_mode, DISTRIBUTION_MODES, "distribution_mode")
        check_positive_int(num_envs, "num_envs")
        check_nonneg_int(num_levels, "num_levels")
        check_nonneg_int(start_level, "start_level")
        unknown = set(visual) - set(VISUAL_OPTIONS)
        if unknown:
            raise UserError(f"unknown ProcGen options {sorted(unknown)}; allowed: {VISUAL_OPTIONS}")
        from procgen import ProcgenGym3Env

        self.game, self.distribution_mode = game, distribution_mode
        self.num_levels, self.start_level, self.rand_seed = num_levels, start_level, rand_seed
        self.gym3 = ProcgenGym3Env(num=num_envs, env_name=game, distribution_mode=distribution_mode,
                                   num_levels=num_levels, start_level=start_level,
                                   rand_seed=rand_seed,
                                   num_threads=num_threads, **visual)
        obs_space = gym.spaces.Box(0, 255, shape=(64, 64, 3), dtype=np.uint8)
        act_space = gym.spaces.Discrete(self.gym3.ac_space.eltype.n)
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        super().__init__(num_envs, obs_space, act_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        """The current observations. gym3 resets games itself; a fresh env starts at step 0."""
        _, obs, _ = self.gym3.observe()
        return obs["rgb"]  # gym3 already hands out a fresh copy (reuse_arrays=False)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int32).reshape(self.num_envs)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called before step_async()")
        self.gym3.act(self._actions)
        reward, obs, first = self.gym3.observe()
        self._actions = None
        infos = [{"level_seed": int(i["level_seed"]), "prev_level_seed": int(i["prev_level_seed"]),
                  "prev_level_complete": bool(i["prev_level_complete"])} for i in self.gym3.get_info()]
        # gym3 returns fresh arrays (reuse_arrays=False), so no copy is needed here.
        return obs["rgb"], reward.astype(np.float32, copy=False), first.astype(bool, copy=False), infos

    def close(self) -> None:
        self.gym3 = None  # the C env is freed with the object

    def get_images(self) -> Sequence[np.ndarray | None]:
        _, obs, _ = self.gym3.observe()
        return list(obs["rgb"])

    # VecEnv plumbing: there are no per-game Python objects, so attributes live on the adapter.
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args, indices: VecEnvIndices = None, **kwargs) -> list[Any]:
        return [getattr(self, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """ProcGen is seeded at construction (``rand_seed``); re-seeding is not supported."""
        return [self.rand_seed for _ in range(self.num_envs)]
