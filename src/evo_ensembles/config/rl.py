"""Configs of the RL runs: ``rl train`` (PPO agents) and ``rl evaluate`` (agent vs its noisy
ensemble policy), and the choices they offer.

This module imports nothing heavy: SB3, gym and ProcGen load only when a config checks its
environment and preset, or when a run starts.

Examples:
    >>> RLEvalConfig(agent="runs/agent", top_k=4).population  # the top 4 of 2K = 8 children
    8
    >>> RLEvalConfig(agent="runs/agent", sigma=None).sigma is None  # the KL trust region
    True
    >>> RLEvalConfig(agent="runs/agent", top_k=4, population=2)
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.UserError: --top-k must be between 1 and --population (2), got 4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from ..checks import (
    check_fraction,
    check_nonneg,
    check_nonneg_int,
    check_positive,
    check_positive_int,
)
from ..errors import UserError
from .fields import option
from .noisy import NoiseSelectionFields, sigma_or_auto
from .shared import RuntimeFields

ACTION_RULES = ("sample", "argmax")  # act on the averaged distribution: sample it, or its arg-max
PERTURB_SCOPES = ("actor", "head")  # which actor weights noisy children perturb
LEVEL_SETS = ("train", "held-out", "all")  # see evo_ensembles.agents.evaluate
ENSEMBLES = ("none", "noisy")
PRESET_BY_FAMILY = {"procgen": "paper", "minigrid": "minigrid", "minatar": "minatar", "gym": "classic"}


@dataclass
class RLTrainConfig(RuntimeFields):
    """Settings of ``evo-ensembles rl train``; each field is one CLI flag.

    Attributes:
        env: ``procgen:<game>``, ``minigrid:<id>``, ``minatar:<game>`` or ``gym:<id>``.
        preset: ``paper``, ``procgen-baseline``, ``minigrid``, ``minatar``, ``classic`` or
            ``smoke`` (default: ``paper`` for ProcGen, ``minigrid`` for MiniGrid, ``minatar``
            for MinAtar, ``classic`` for gym).
        timesteps: total environment steps (default: the preset's).
        n_envs: parallel environments (default: the preset's).
        train_levels: train on level seeds ``start_level … start_level + N − 1`` only
            (ProcGen's ``num_levels``; MiniGrid's layout seeds); ``None``: unlimited levels,
            as in the paper. Only for families with levels (ProcGen, MiniGrid).
        start_level: the first training level.
        checkpoint_every: steps between checkpoints (rounded up to whole rollouts).
        max_seconds: stop after this much training wall time (at the next rollout boundary),
            checkpoint and return; rerunning resumes. For preemptible or time-limited jobs.
        seed: seeds the policy initialisation, PPO sampling and the training levels.
        overrides: :class:`~evo_ensembles.agents.Preset` fields to replace (library only).
    """

    env: str = option(
        help="procgen:<game> (e.g. procgen:starpilot), minigrid:<id> (e.g. "
        "minigrid:MiniGrid-DoorKey-6x6-v0), minatar:<game>, gym:<id> (e.g. gym:CartPole-v1)"
    )
    preset: str | None = option(
        None, "paper | procgen-baseline | minigrid | minatar | classic | smoke",
        default_help="by env family",
    )
    timesteps: int | None = option(
        None, "total steps", check=check_positive_int, default_help="the preset's"
    )
    n_envs: int | None = option(
        None, "parallel envs", check=check_positive_int, default_help="the preset's"
    )
    train_levels: int | None = option(
        None,
        "train on level seeds start … start+N-1 only (ProcGen, MiniGrid)",
        check=check_positive_int,
        default_help="unlimited",
        metavar="N",
    )
    start_level: int = option(0, "first training level (ProcGen, MiniGrid)", check=check_nonneg_int)
    checkpoint_every: int = option(100_000, "steps between checkpoints", check=check_positive_int)
    max_seconds: float | None = option(
        None,
        "stop after this much training time (checkpointed; rerun to resume)",
        check=check_positive,
    )
    overrides: dict | None = field(default=None)

    def resolve(self) -> None:
        super().resolve()
        if self.preset is None:
            from ..envs import parse_env_id

            self.preset = PRESET_BY_FAMILY[parse_env_id(self.env).family]

    def check(self) -> None:
        super().check()
        from ..envs import LEVEL_FAMILIES, parse_env_id

        family = parse_env_id(self.env).family  # an unknown env or game fails here
        if family not in LEVEL_FAMILIES and (self.train_levels is not None or self.start_level):
            flag = "--train-levels" if self.train_levels is not None else "--start-level"
            raise UserError(f"{flag}: {family} environments have no levels; levels are for "
                            f"{' and '.join(LEVEL_FAMILIES)} environments")
        if family == "minigrid":
            from ..envs.minigrid import check_training_levels

            check_training_levels(self.train_levels or 0, self.start_level)
        self.preset_spec()  # a preset that does not fit the env

    @property
    def num_levels(self) -> int:
        """``train_levels`` as ProcGen counts it: 0 for unlimited."""
        return self.train_levels or 0

    def preset_spec(self) -> Any:
        """The :class:`~evo_ensembles.agents.Preset` this config trains with."""
        from ..agents.presets import get_preset

        return get_preset(cast(str, self.preset), self.env, **(self.overrides or {}))  # resolve() set preset


@dataclass(kw_only=True)
class RLEvalConfig(NoiseSelectionFields, RuntimeFields):
    """Settings of ``evo-ensembles rl evaluate``; each field is one CLI flag.

    Parent and ensemble are always scored under the same action rule on the same episodes.
    ``train_returns`` adds the same scores on the training levels, ``both_rules`` under the
    other action rule (the children stay the ones selected under ``action``); every score is
    one row of ``results["scores"]``.
    The ensemble defaults are the RL regime study's choice (benchmarks/results/rl_regime.md,
    chosen on validation episodes of 4 MinAtar games x 3 training seeds): act on the
    arg-max of the averaged distribution, fixed σ 0.01 on half the actor's weights, the top
    8 of 16 children by selection episodes.
    """

    agent: str = option(help="directory written by rl train")
    env: str | None = option(None, "check the agent was trained on this env")
    ensemble: str = option(
        "noisy", "evaluate the agent alone, or also its noisy ensemble", choices=ENSEMBLES
    )
    episodes: int = option(100, "evaluation episodes", check=check_positive_int)
    levels: str = option(
        "held-out", "evaluation levels (ProcGen) or seed stream", choices=LEVEL_SETS
    )
    # The noisy-children flags of every noisy ensemble (NoiseSelectionFields), at this regime's
    # defaults; --members is the older spelling of --top-k.
    top_k: int = option(8, "K kept: the ensemble size", check=check_positive_int, aliases=("--members",),
                        group="children")
    population: int | None = option(
        None,
        "N children; keep the top K by selection episodes (N = K: no selection)",
        check=check_positive_int,
        default_help="2K",
        group="children",
    )
    selection_episodes: int = option(
        10, "episodes per child when selecting", check=check_positive_int
    )
    sigma: float | None = option(
        0.01,
        "noise σ, or auto: the KL trust region at --target-kl",
        check=check_nonneg,
        parse=sigma_or_auto,
        nullable=True,
        metavar="SIGMA|auto",
        group="trust region",
    )
    target_kl: float = option(
        0.02, "trust-region target KL of the action distribution (--sigma auto)", check=check_positive,
        group="trust region",
    )
    density: float = option(0.5, "fraction of actor weights perturbed", check=check_fraction, group="children")
    perturb: str = option(
        "actor",
        "which actor weights the children perturb: all, or the action head only",
        choices=PERTURB_SCOPES,
    )
    probe_steps: int = option(
        1024, "parent rollout steps for the σ probe", check=check_positive_int
    )
    action: str = option(
        "argmax", "act on the arg-max of the averaged distribution, or sample it", choices=ACTION_RULES
    )
    n_envs: int = option(4, "parallel evaluation envs", check=check_positive_int)
    train_returns: bool = option(
        False, "also score parent and ensemble on the agent's training levels (the generalisation gap)"
    )
    both_rules: bool = option(
        False, "also score parent and ensemble under the other action rule (same children, same levels)"
    )

    def resolve(self) -> None:
        super().resolve()
        if self.population is None:
            self.population = 2 * self.top_k


__all__ = [
    "ACTION_RULES",
    "ENSEMBLES",
    "LEVEL_SETS",
    "PERTURB_SCOPES",
    "PRESET_BY_FAMILY",
    "RLEvalConfig",
    "sigma_or_auto",
    "RLTrainConfig",
]
