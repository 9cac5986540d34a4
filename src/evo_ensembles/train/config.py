"""How to train: one dataclass shared by parents, children and baselines."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UserError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "one-cycle", "step-decay")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        epochs: passes over the training data (> 0).
        lr: learning rate; for ``one-cycle`` it is the *peak* rate.
        optimizer: ``"adam"`` or ``"sgd"`` (SGD always uses Nesterov momentum).
        momentum: SGD momentum / Adam beta1 (the one-cycle schedule cycles it inversely).
        weight_decay: L2 penalty (coupled, as in the paper's recipes).
        schedule: ``"constant"``; ``"one-cycle"`` (torch OneCycleLR: cosine warm-up from
            ``lr / div_factor`` to ``lr`` over ``pct_start`` of the steps, cosine decay to
            ``final_lr``, momentum inverse, no annihilation phase — SPEC §3); or
            ``"step-decay"`` (the paper's parent recipe: ``lr`` for the first 50%, linear
            decay to ``lr * 0.01`` at 90%, constant after).
        batch_size: examples per step.
        seed: drives data order, augmentation and dropout; same seed ⇒ same run.
    """

    epochs: int = 1
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    pct_start: float = 0.1
    div_factor: float = 100.0
    final_lr: float = 1e-7
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise UserError(f"epochs must be a positive integer, got {self.epochs}")
        if not self.lr > 0:
            raise UserError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}; choose from {SCHEDULES}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0 < self.pct_start < 1:
            raise UserError(f"pct_start must be in (0, 1), got {self.pct_start}")

    def to_dict(self) -> dict:
        return asdict(self)
