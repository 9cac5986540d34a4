"""Agents: SB3 PPO with an Impala CNN (ProcGen), a small CNN (MinAtar) or an MLP, presets,
training with checkpoints and resume, and the noisy ensemble policy."""

from ..envs import _quiet_gym  # noqa: F401  (must precede SB3)
from .networks import ImpalaCNN, MinAtarCNN
from .presets import Preset, available_presets, get_preset
from .train import RLTrainConfig, build_env, load_agent, train_agent

__all__ = ["ImpalaCNN", "MinAtarCNN", "Preset", "RLTrainConfig", "available_presets", "build_env",
           "get_preset", "load_agent", "train_agent"]
