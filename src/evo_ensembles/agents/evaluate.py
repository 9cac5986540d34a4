"""Episode evaluation of a policy (or an ensemble policy) on fixed levels/seeds.

Every predictor is evaluated on the *same* environment seeds (common random numbers): the
parent, each candidate child and the ensemble meet the same level sequence. Returns are the
raw episode returns recorded by ``VecMonitor`` (before any reward normalisation).

Level sets for ProcGen (``levels``):
  ``train``     the agent's training distribution (same ``num_levels``/``start_level``);
  ``held-out``  levels the agent never trained on when it trained on a finite set
                (``start_level = train start + train num_levels``); with unlimited training
                levels (the paper's protocol) every level is a training level, so this uses
                unlimited levels with a seed disjoint from training;
  ``all``       unlimited levels.
MiniGrid's level seeds are split once for all (see :mod:`evo_ensembles.envs.minigrid`):
``train`` replays the agent's training levels, ``held-out`` draws from the seeds no
training ever uses (``[2^30, 2^31)``), ``all`` from every seed.
For MinAtar/gymnasium, ``levels`` only changes the seed stream.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecEnv, VecTransposeImage

from ..checks import check_known
from ..config.rl import LEVEL_SETS
from ..envs import make_vec_env, parse_env_id
from ..errors import UserError
from .presets import get_preset
from .train import load_normalization_state

_SEED_OFFSET = {"train": 0, "held-out": 1_000_003, "all": 2_000_003}


def eval_env(meta: dict[str, Any], *, levels: str = "held-out", seed: int = 0, n_envs: int = 1) -> VecEnv:
    """The agent's environment stack for evaluation.

    No reward normalisation; the same frame stack; observations standardised with the
    training statistics, frozen, when the agent was trained that way.
    """
    check_known(levels, LEVEL_SETS, "level set")
    preset = get_preset(meta["preset"]["name"], meta["env"])
    num_levels, start_level = evaluation_levels(meta, levels)
    normalize_obs = bool(meta["preset"].get("normalize_obs", False))  # as trained, overrides included
    env = make_vec_env(meta["env"], n_envs, seed + _SEED_OFFSET[levels], frame_stack=preset.frame_stack,
                       normalize_reward=False, normalize_obs=normalize_obs, distribution_mode=preset.distribution_mode,
                       num_levels=num_levels, start_level=start_level)
    if normalize_obs:
        load_normalization_state(env, meta.get("normalization"), frozen=True)
    space = env.observation_space
    # (is_image_space is False for any space but a Box)
    if isinstance(space, spaces.Box) and is_image_space(space) and not is_image_space_channels_first(space):
        env = VecTransposeImage(env)  # what SB3 did to the training env
    return env


def evaluation_levels(meta: dict[str, Any], levels: str) -> tuple[int, int]:
    """``(num_levels, start_level)`` of the level set ``levels`` for an agent trained as ``meta`` says."""
    num_levels, start_level = int(meta.get("num_levels", 0)), int(meta.get("start_level", 0))
    if levels == "train":
        return num_levels, start_level
    if parse_env_id(meta["env"]).family == "minigrid":
        from ..envs.minigrid import HELD_OUT_START, LEVEL_SPACE

        return (LEVEL_SPACE - HELD_OUT_START, HELD_OUT_START) if levels == "held-out" else (LEVEL_SPACE, 0)
    if levels == "held-out" and num_levels > 0:
        return 0, start_level + num_levels
    return 0, 0


def run_episodes(predictor, meta: dict[str, Any], *, episodes: int, levels: str = "held-out", seed: int = 0,
                 n_envs: int = 1) -> dict[str, Any]:
    """Mean/std of raw returns over ``episodes`` episodes of ``predictor`` (SB3 ``predict`` API)."""
    if episodes < 1:
        raise UserError(f"--episodes must be > 0, got {episodes}")
    env = eval_env(meta, levels=levels, seed=seed, n_envs=n_envs)
    try:
        returns, lengths = cast("tuple[list[float], list[int]]",  # per-episode lists: return_episode_rewards
                                evaluate_policy(predictor, env, n_eval_episodes=episodes, deterministic=False,
                                                return_episode_rewards=True, warn=False))
    finally:
        env.close()
    r = np.asarray(returns, dtype=float)
    return {"mean_return": float(r.mean()), "std_return": float(r.std(ddof=1)) if len(r) > 1 else 0.0,
            "episodes": len(r), "returns": r.tolist(), "lengths": [int(x) for x in lengths],
            "levels": levels, "seed": seed}


def collect_observations(predictor, meta: dict[str, Any], *, steps: int, seed: int = 0, n_envs: int = 4) -> np.ndarray:
    """Observations visited by ``predictor`` (the parent's own rollouts) for KL probes."""
    env = eval_env(meta, levels="train", seed=seed + 7, n_envs=n_envs)
    try:
        obs = env.reset()
        out: list[np.ndarray] = []
        while sum(len(o) for o in out) < steps:
            out.append(np.array(obs, copy=True))
            actions, _ = predictor.predict(obs)
            obs, _, _, _ = env.step(actions)
    finally:
        env.close()
    return np.concatenate(out)[:steps]
