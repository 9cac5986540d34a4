"""MiniGrid tasks (the ``minigrid`` package on gymnasium) with level splits, as ProcGen's.

A MiniGrid *level* is the seed its layout is generated from (``env.reset(seed=level)``);
MiniGrid's dynamics are deterministic given the layout and the actions. :class:`LevelSeeds`
draws one level per episode, uniformly from a range, the way ProcGen's ``num_levels`` does:

* training on ``N`` levels uses level seeds ``start … start + N − 1``;
* unlimited training draws from ``[0, HELD_OUT_START)``;
* held-out evaluation draws from ``[HELD_OUT_START, LEVEL_SPACE)``,

so held-out levels never meet training levels, whatever ``N`` was.

Observations are the agent's partial 7×7 view, one-hot encoded as MiniGrid's own
``OneHotPartialObsWrapper`` does (object, colour and state: 20 channels; a test pins the
two equal), but as float32 channels-first maps for SB3 and in one scatter for the whole vector of envs
(:class:`VecOneHot`): MiniGrid's per-cell Python loop halved the stack's throughput, and
encoding env by env still cost 8% of a step (benchmarks/perf_rl.py measures it).
The mission string is dropped: it is constant within each task the study uses.

Examples:
    >>> env = make_minigrid("MiniGrid-DoorKey-6x6-v0", num_levels=25)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, obs.dtype, 0 <= info["level_seed"] < 25
    ((20, 7, 7), dtype('float32'), True)
"""

from __future__ import annotations

import functools
from typing import Any, cast

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from ..checks import check_nonneg_int
from ..errors import UnknownNameError, UserError

LEVEL_SPACE = 2**31
HELD_OUT_START = 2**30
EXAMPLES = ("MiniGrid-DoorKey-6x6-v0", "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-LavaGapS6-v0",
            "MiniGrid-SimpleCrossingS9N1-v0", "MiniGrid-MultiRoom-N2-S4-v0")


def _registry() -> list[str]:
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids with gymnasium; slow, so on use)

    return sorted(k for k in gym.registry if k.startswith("MiniGrid-"))


def resolve_minigrid_id(name: str) -> str:
    """The gymnasium id of ``name``: a full id (``MiniGrid-DoorKey-6x6-v0``) or its short form
    (``DoorKey-6x6``); an unknown name raises an error listing a few valid ones."""
    ids = _registry()
    if name in ids:
        return name
    full = f"MiniGrid-{name}-v0"
    if full in ids:
        return full
    raise UnknownNameError(f"unknown MiniGrid environment {name!r}; e.g. {', '.join(EXAMPLES)} "
                           f"({len(ids)} ids: python -c \"import minigrid, gymnasium; "
                           "print([k for k in gymnasium.registry if k.startswith('MiniGrid-')])\")")


def level_range(num_levels: int = 0, start_level: int = 0) -> tuple[int, int]:
    """The ``[low, high)`` level seeds of a level set (``num_levels=0``: unlimited training levels)."""
    check_nonneg_int(num_levels, "num_levels")
    check_nonneg_int(start_level, "start_level")
    if num_levels == 0:
        if start_level >= HELD_OUT_START:
            raise UserError(f"unlimited training levels start below {HELD_OUT_START}, got start {start_level}")
        return start_level, HELD_OUT_START
    if start_level + num_levels > LEVEL_SPACE:
        raise UserError(f"levels {start_level} … {start_level + num_levels - 1} exceed the level space "
                        f"(0 … {LEVEL_SPACE - 1})")
    return start_level, start_level + num_levels


def check_training_levels(num_levels: int, start_level: int, flag: str = "--train-levels") -> None:
    """Training levels must lie below :data:`HELD_OUT_START`, so held-out levels stay unseen."""
    if start_level + max(num_levels, 1) > HELD_OUT_START:
        raise UserError(f"{flag}: MiniGrid training levels must lie below {HELD_OUT_START} (held-out "
                        f"levels start there), got {start_level} … {start_level + num_levels - 1}")


@functools.cache
def _channels() -> tuple[np.ndarray, np.ndarray]:
    """For each of the 20 one-hot channels: which of the 3 encoded fields it reads, and the value
    it is hot for."""
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

    sizes = (len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX))
    field = np.repeat(np.arange(3), sizes)
    value = np.concatenate([np.arange(n) for n in sizes]).astype(np.uint8)
    return field, value


def one_hot(images: np.ndarray) -> np.ndarray:
    """MiniGrid's encoded views ``(..., H, W, 3)`` → one-hot float32 ``(..., 20, H, W)``.

    Channels: the object type (11), then its colour (6), then its state (3), as MiniGrid's
    ``OneHotPartialObsWrapper`` orders them; a value outside its field's range sets no bit. Any
    number of leading (batch) axes, in three array operations for the whole batch, which is
    why the vectorised stack encodes after ``DummyVecEnv`` (:class:`VecOneHot`).

    Examples:
        >>> view = np.zeros((2, 7, 7, 3), dtype=np.uint8)  # unseen cells, colour red, state open
        >>> x = one_hot(view)
        >>> x.shape, float(x.sum(axis=1).max()), bool(x[:, 0].all() and x[:, 11].all() and x[:, 17].all())
        ((2, 20, 7, 7), 3.0, True)
    """
    field, value = _channels()
    hot = images[..., field] == value  # (..., H, W, 20)
    return np.moveaxis(hot, -1, -3).astype(np.float32, order="C")


def one_hot_space(image_space: gym.spaces.Box) -> gym.spaces.Box:
    """The observation space :func:`one_hot` maps MiniGrid's ``(H, W, 3)`` image space to."""
    h, w, _ = image_space.shape
    return gym.spaces.Box(0.0, 1.0, shape=(len(_channels()[0]), h, w), dtype=np.float32)


class OneHotView(gym.ObservationWrapper):
    """One MiniGrid env's dict observation → its :func:`one_hot` image, float32 (C, H, W)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        # MiniGrid's observation space is a Dict whose "image" entry is a Box.
        image_space = cast(gym.spaces.Dict, env.observation_space)["image"]
        self.observation_space = one_hot_space(cast(gym.spaces.Box, image_space))

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        return one_hot(observation["image"])


class MiniGridVecEnv(DummyVecEnv):
    """SB3's ``DummyVecEnv`` over MiniGrid image envs, without its two deep copies per step.

    ``DummyVecEnv.step_wait`` returns ``deepcopy`` of its observation buffer and of every
    info dict, which cost about 8% of a MiniGrid step (benchmarks/perf_rl.py). Here the
    buffer is copied as one array and each info dict shallowly; the terminal observation is
    copied, so nothing returned is shared with the envs. What is returned (values, order,
    auto-reset, ``TimeLimit.truncated``, seeding) is the same as ``DummyVecEnv``'s: a test
    steps both side by side.
    """

    def step_wait(self):
        for i, env in enumerate(self.envs):
            obs, self.buf_rews[i], terminated, truncated, info = env.step(self.actions[i])
            info = dict(info)
            self.buf_dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if self.buf_dones[i]:
                info["terminal_observation"] = np.array(obs)
                obs, self.reset_infos[i] = env.reset()
            self.buf_infos[i] = info
            self.buf_obs[None][i] = obs
        return (self.buf_obs[None].copy(), np.copy(self.buf_rews), np.copy(self.buf_dones),
                [dict(info) for info in self.buf_infos])


class VecOneHot(VecEnvWrapper):
    """A vector of MiniGrid image envs (``ImgObsWrapper``) → :func:`one_hot` views, one batch
    per step (terminal observations too, as SB3's ``VecTransposeImage`` does)."""

    def __init__(self, venv: VecEnv) -> None:
        # ImgObsWrapper envs: the image Box.
        super().__init__(venv, observation_space=one_hot_space(cast(gym.spaces.Box, venv.observation_space)))

    def reset(self) -> np.ndarray:
        return one_hot(cast(np.ndarray, self.venv.reset()))  # image envs: one array, not a dict

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = one_hot(info["terminal_observation"])
        return one_hot(obs), rewards, dones, infos


class LevelSeeds(gym.Wrapper):
    """Each episode plays one level drawn uniformly from ``[low, high)``.

    ``reset(seed=s)`` re-seeds the draw (not the layout), so the same seed replays the same
    level sequence: every predictor evaluated with one seed meets the same levels. The level
    played is ``info["level_seed"]``.
    """

    def __init__(self, env: gym.Env, low: int, high: int) -> None:
        super().__init__(env)
        if not 0 <= low < high <= LEVEL_SPACE:
            raise UserError(f"level range [{low}, {high}) is empty or outside 0 … {LEVEL_SPACE}")
        self.low, self.high = int(low), int(high)
        self._levels = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._levels = np.random.default_rng(seed)
        level = int(self._levels.integers(self.low, self.high))
        obs, info = self.env.reset(seed=level, options=options)
        return obs, {**info, "level_seed": level}


def make_minigrid(name: str, *, num_levels: int = 0, start_level: int = 0, encode: bool = True) -> gym.Env:
    """One MiniGrid task on a level set, with one-hot float32 (20, 7, 7) observations.

    ``encode=False`` gives MiniGrid's uint8 (7, 7, 3) image instead, for a vector of envs
    that :class:`VecOneHot` encodes in one batch (what :func:`make_vec_env` builds).
    """
    from minigrid.wrappers import ImgObsWrapper

    low, high = level_range(num_levels, start_level)
    env = gym.make(resolve_minigrid_id(name))
    return LevelSeeds(OneHotView(env) if encode else ImgObsWrapper(env), low, high)


__all__ = ["EXAMPLES", "HELD_OUT_START", "LEVEL_SPACE", "LevelSeeds", "MiniGridVecEnv", "OneHotView", "VecOneHot",
           "check_training_levels", "level_range", "make_minigrid", "one_hot", "one_hot_space", "resolve_minigrid_id"]
