"""Agents: SB3 PPO with an Impala CNN (ProcGen), a small CNN (MinAtar) or an MLP, presets,
training with checkpoints and resume, and the noisy ensemble policy (the ``[rl]`` extra).

Their run configs live in :mod:`evo_ensembles.config.rl`, which imports none of this.
"""

from ..config.rl import RLTrainConfig
from ..envs import _quiet_gym  # noqa: F401  (must precede SB3)
from .networks import ImpalaCNN, MinAtarCNN
from .presets import Preset, available_presets, get_preset
from .train import build_env, load_agent, train_agent

__all__ = ["ImpalaCNN", "MinAtarCNN", "Preset", "RLTrainConfig", "available_presets", "build_env",
           "get_preset", "load_agent", "train_agent"]
