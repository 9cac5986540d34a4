"""How to train: one dataclass shared by parents, children and baselines."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..checks import check_choice, check_positive, check_positive_int
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
        check_positive(self.lr, "learning rate")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_positive_int(self.batch_size, "batch size")
        if not 0 < self.pct_start < 1:
            raise UserError(f"pct_start must be in (0, 1), got {self.pct_start}")

    def to_dict(self) -> dict:
        return asdict(self)


def parent_train_config(epochs: int, lr: float, optimizer: str, batch_size: int, seed: int) -> TrainConfig:
    """The parent recipe: Adam at a constant rate, or SGD-Nesterov with the paper's step decay."""
    schedule = "constant" if optimizer == "adam" else "step-decay"
    return TrainConfig(epochs=epochs, lr=lr, optimizer=optimizer, schedule=schedule,
                       batch_size=batch_size, seed=seed)
