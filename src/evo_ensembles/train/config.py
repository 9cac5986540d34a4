"""How to train: one dataclass shared by parents, children and baselines."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..checks import check_choice, check_open_fraction, check_positive, check_positive_int
from ..errors import UserError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "one-cycle", "step-decay", "cosine-restarts", "cyclic")
# Fields added after runs were cached: left out of to_dict() at their defaults, so the run
# keys (and resume states) of earlier runs still match.
_LATER_FIELDS = {"cycle_epochs": 0, "min_lr": 0.0}


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
            decay to ``lr * 0.01`` at 90%, constant after); ``"cosine-restarts"`` (Snapshot
            Ensembles: cosine from ``lr`` to ``min_lr`` over each ``cycle_epochs``, restarted,
            stepped per batch; torch's CosineAnnealingWarmRestarts); or ``"cyclic"`` (FGE:
            linear from ``lr`` = α1 at each cycle boundary to ``min_lr`` = α2 at mid-cycle
            and back, per batch, cycles of ``cycle_epochs``, as in the FGE reference code).
        cycle_epochs: length of one cycle of the two cyclic schedules (``cyclic``: even).
        min_lr: the cyclic schedules' lowest rate (Snapshot 0; FGE's α2).
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
    cycle_epochs: int = 0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise UserError(f"epochs must be a positive integer, got {self.epochs}")
        check_positive(self.lr, "learning rate")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_positive_int(self.batch_size, "batch size")
        check_open_fraction(self.pct_start, "pct_start")
        if self.schedule in ("cosine-restarts", "cyclic"):
            if int(self.cycle_epochs) != self.cycle_epochs or not 1 <= self.cycle_epochs <= self.epochs:
                raise UserError(f"a {self.schedule} schedule needs cycle_epochs in [1, epochs={self.epochs}], "
                                f"got {self.cycle_epochs}")
            if self.schedule == "cyclic" and self.cycle_epochs % 2:
                raise UserError(f"the cyclic (FGE) schedule needs an even cycle_epochs, got {self.cycle_epochs}")
            if not 0 <= self.min_lr <= self.lr:
                raise UserError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, default in _LATER_FIELDS.items():
            if d[k] == default:
                del d[k]
        return d


def parent_train_config(epochs: int, lr: float, optimizer: str, batch_size: int, seed: int,
                        weight_decay: float = 0.0) -> TrainConfig:
    """The parent recipe: Adam at a constant rate, or SGD-Nesterov with the paper's step decay."""
    schedule = "constant" if optimizer == "adam" else "step-decay"
    return TrainConfig(epochs=epochs, lr=lr, optimizer=optimizer, schedule=schedule,
                       batch_size=batch_size, seed=seed, weight_decay=weight_decay)
