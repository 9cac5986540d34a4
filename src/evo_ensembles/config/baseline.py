"""Config of the ``baseline`` run: one peer method at a stated budget.

The budget is ``--epochs``: one model's full training. Each method spends it by its own rule
(SPEC §3), and reports the epochs it actually ran and its FLOPs relative to that one model.
The methods, their default sizes, options and rules are declared in their own modules and
read through :mod:`evo_ensembles.methods.registry` (``evo-ensembles baseline --help`` lists them).

Examples:
    >>> cfg = BaselineRunConfig(method="snapshot", epochs=8)
    >>> cfg.members, cfg.method_options()
    (4, {'members': 4})
    >>> BaselineRunConfig(method="snapshot", epochs=6, members=4)
    Traceback (most recent call last):
    ...
    evo_ensembles.errors.UserError: --epochs (6) must be a multiple of --members (4) for snapshot
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

from ..checks import check_fraction, check_positive, check_positive_int, check_probability
from ..errors import UserError
from ..methods.registry import method, peer_names
from ..train import TrainConfig, parent_train_config
from .fields import option
from .shared import DEFAULT_MODEL, DataFields, EnsembleFields, RuntimeFields, TrainingFields

PEERS = peer_names()
# Ensemble sizes: the paper's tables (SPEC §3) where the default 16-epoch budget holds them
# (TreeNet 3, BatchEnsemble 4, MIMO 3, DST 3, dense 4); fewer where it does not: Snapshot 4
# (paper 5; 16 epochs split into equal cycles), FGE 2 (paper 12; 2-epoch cycles after ~80%
# pre-training), EDST 3 (paper 7). Each is declared with its method.
DEFAULT_MEMBERS = {name: method(name).members for name in PEERS}


@dataclass(kw_only=True)
class BaselineRunConfig(EnsembleFields, TrainingFields, DataFields, RuntimeFields):
    """Settings of a ``baseline`` run; each field is one CLI flag."""

    method: str = option(help="the peer method", choices=PEERS, group="method")
    model: str = option(DEFAULT_MODEL, "model (mothernets: an MLP, mlp-<w>[x<d>])", group="data and model")
    epochs: int = option(16, "the budget: epochs of one model's full training", check=check_positive_int,
                         group="method")
    members: int | None = option(None, "ensemble size (MC Dropout: test-time passes)", check=check_positive_int,
                                 group="method", default_help="the method's own (paper sizes)")
    member_epochs: int | None = option(
        None, "bagging, deep-ensemble, dst: epochs of each separately trained member", check=check_positive_int,
        group="method", default_help="--epochs / --members: the same total budget")
    dropout: float | None = option(None, "dropout rate (dropout, mc-dropout)", check=check_probability,
                                   group="method", default_help="0.3 in residual blocks, 0.5 after hidden layers")
    bag_fraction: float = option(0.9, "bagging: fraction of train per member", check=check_fraction, group="method")
    cycle_epochs: int = option(2, "fge: epochs per cyclic-lr cycle (even)", check=check_positive_int, group="method")
    pretrain_fraction: float = option(0.8, "fge: share of the budget before the cycles (when --members is unset)",
                                      check=check_fraction, group="method")
    fge_lr_low: float | None = option(None, "fge: α2, the rate at mid-cycle", check=check_positive, group="method",
                                      default_help="--lr / 100")
    split: str | None = option(None, "treenet: first layer of the branches (e.g. conv2, layer2)", group="method",
                               default_help="after the first block")
    init: str = option("normal", "batchensemble: fast-weight init, N(1, 0.5) or random signs",
                       choices=("normal", "random-sign"), group="method")
    batch_repetitions: int = option(4, "mimo: times each batch is repeated (the reference's CIFAR setting)",
                                    check=check_positive_int, group="method")
    input_sharing: float = option(0.0, "mimo: ρ, the share of a batch every member sees alike",
                                  check=check_probability, group="method")
    density: float | None = option(None, "dst/edst: fraction of weights kept", check=check_fraction,
                                   group="method", default_help="0.2 (dst), 0.1 (edst)")
    death_rate: float = option(0.5, "dst/edst: share of active weights pruned and regrown per update",
                               check=check_probability, group="method")
    update_interval: int = option(100, "dst/edst: steps between prune-and-regrow updates",
                                  check=check_positive_int, group="method")
    regrow: str = option("gradient", "dst/edst: regrow by gradient magnitude (RigL) or at random (SET)",
                         choices=("gradient", "random"), group="method")
    mother_width: int | None = option(None, "mothernets: hidden width of the mothernet", check=check_positive_int,
                                      group="method", default_help="half the members'")

    def resolve(self) -> None:
        super().resolve()
        spec = method(self.method) if self.method in PEERS else None  # an unknown one fails in check()
        if spec is None:
            return
        if self.members is None:
            self.members = spec.members
        if self.member_epochs is None and spec.budget == "split":
            self.member_epochs = max(1, self.epochs // self.members)
        for name, value in spec.defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def check(self) -> None:
        super().check()
        spec = method(self.method)
        if spec.size is None and self.members != 1:
            raise UserError(f"--method {self.method} is one model; drop --members")
        if spec.check is not None:
            spec.load(spec.check)(self)
        self.train_config()

    def train_config(self) -> TrainConfig:
        """The budget's training settings (Adam at a constant rate, or SGD with the step decay)."""
        return parent_train_config(self.epochs, self.lr, self.optimizer, self.batch_size, self.seed,
                                   self.weight_decay)

    def method_options(self) -> dict[str, Any]:
        """Keywords of the method's library function (besides model, data, config): its size and
        the options it declares (a ``None`` value is left to the function's default)."""
        spec = method(self.method)
        opts: dict[str, Any] = {} if spec.size is None else {spec.size: self.members}
        opts.update({k: getattr(self, f) for k, f in spec.options.items() if getattr(self, f) is not None})
        return opts

    def method_train_config(self) -> TrainConfig:
        """What the method's function gets as ``cfg``: the budget, or one member's epochs."""
        cfg = self.train_config()
        if method(self.method).budget == "split":
            cfg = replace(cfg, epochs=cast(int, self.member_epochs))  # resolve() set it for a split budget
        return cfg


__all__ = ["DEFAULT_MEMBERS", "PEERS", "BaselineRunConfig"]
