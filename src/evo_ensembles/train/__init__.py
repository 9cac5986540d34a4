"""The one training loop, its config, optimizers/schedules and checkpoints."""

from ..run_folder import check_output_dir, write_json, write_text
from .checkpoint import (
    checkpoint_path,
    load_state_into,
    load_tensors,
    parent_fingerprint,
    read_meta,
    save_model,
    save_tensors,
)
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, parent_train_config
from .loop import Callback, Objective, TrainResult, cross_entropy, evaluate_accuracy, fit
from .optim import build_optimizer, build_scheduler, cycle_minima

__all__ = [
    "check_output_dir",
    "checkpoint_path",
    "parent_fingerprint",
    "parent_train_config",
    "OPTIMIZERS",
    "SCHEDULES",
    "Callback",
    "Objective",
    "cross_entropy",
    "cycle_minima",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "evaluate_accuracy",
    "fit",
    "load_state_into",
    "load_tensors",
    "read_meta",
    "save_model",
    "save_tensors",
    "write_json",
    "write_text",
]
