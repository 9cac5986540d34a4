"""Field groups every classifier run shares: data, parent, runtime and how the ensemble votes.

A run config is composed from these by inheritance (``class SparseRunConfig(EnsembleFields,
ParentFields, DataFields, RuntimeFields)``): each field is declared once, here, and the
config stays flat (``cfg.lr``, ``config.json`` keys unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checks import (
    check_nonneg,
    check_nonneg_int,
    check_positive,
    check_positive_int,
    check_split_fraction,
)
from ..data import DataSplits, load_dataset
from ..ensemble import COMBINE_METHODS
from ..metrics import DEFAULT_ECE_BINS
from ..train import OPTIMIZERS, TrainConfig, checkpoint_path, parent_train_config
from .fields import RunConfig, option

DEFAULT_MODEL = "lenet-s"


@dataclass(kw_only=True)
class RuntimeFields(RunConfig):
    """Seed, device and CPU threads."""

    seed: int = option(
        0, "seeds data split, initialisation, masks and noise", check=check_nonneg_int, group="run"
    )
    device: str = option("auto", "auto (CUDA when present), cpu, cuda[:N]", group="run")
    threads: int | None = option(
        None,
        "torch CPU threads (see benchmarks/perf_training.py)",
        check=check_positive_int,
        group="run",
        default_help="all cores",
    )


@dataclass(kw_only=True)
class DataFields(RunConfig):
    """Which data set, where it lives, how much of it, and augmentation."""

    dataset: str = option(
        "fashion-mnist", "fashion-mnist, mnist, cifar10, cifar100", group="data and model"
    )
    data_root: str | None = option(
        None,
        "folder holding the data sets",
        group="data and model",
        default_help="$EVO_ENSEMBLES_DATA_ROOT or /usr/share/datasets",
    )
    subset: int | None = option(
        None,
        "use only N training examples (quick runs)",
        check=check_positive_int,
        group="data and model",
        default_help="all",
    )
    val_fraction: float = option(
        0.1,
        "fraction of train carved out for validation",
        check=check_split_fraction,
        group="data and model",
    )
    augment: bool = option(
        False,
        "random crop/flip while training the parent (off: the regime "
        "study's choice, benchmarks/results/regime.md)",
        bool_flag="both",
        group="data and model",
    )

    def load_data(self) -> DataSplits:
        """The data these fields describe (split with the run's seed)."""
        return load_dataset(self.dataset, self.data_root, val_fraction=self.val_fraction,
                            subset=self.subset, seed=getattr(self, "seed", 0), augment=self.augment)


@dataclass(kw_only=True)
class TrainingFields(RunConfig):
    """How a model is trained: optimizer, learning rate, batch size (the parent's, or a peer's)."""

    optimizer: str = option(
        "adam",
        "adam (constant lr) or sgd (Nesterov, the paper's step decay)",
        choices=OPTIMIZERS,
        group="parent training",
    )
    lr: float = option(1e-3, "parent learning rate", check=check_positive, group="parent training")
    batch_size: int = option(128, "batch size", check=check_positive_int, group="parent training")
    weight_decay: float = option(0.0, "L2 penalty of every training (the paper's large budget: 5e-4)",
                                 check=check_nonneg, group="parent training")


@dataclass(kw_only=True)
class ParentFields(TrainingFields):
    """The parent: a checkpoint to start from, or how to train one."""

    model: str | None = option(
        None,
        "lenet-5, lenet-s, lenet-m/l, mlp, resnet-8/20/18, wrn-D-W, torchvision:<name>",
        group="data and model",
        default_help=f"{DEFAULT_MODEL}, or the --parent checkpoint's",
    )
    parent: str | None = option(
        None,
        "start from a trained parent (.safetensors written by this toolkit)",
        metavar="CHECKPOINT",
        group="data and model",
    )
    parent_epochs: int = option(
        8,
        "epochs to train the parent (without --parent)",
        check=check_positive_int,
        group="parent training",
    )

    def resolve(self) -> None:
        super().resolve()
        if self.parent is not None:  # x.json (the record beside an older checkpoint) names x.safetensors
            self.parent = str(checkpoint_path(self.parent))
        if self.model is None:  # a checkpoint says which model it holds
            self.model = DEFAULT_MODEL if self.parent is None else _checkpoint_model(self.parent)

    def parent_train_config(self) -> TrainConfig:
        """How the parent is trained (see :func:`evo_ensembles.train.parent_train_config`)."""
        return parent_train_config(
            self.parent_epochs, self.lr, self.optimizer, self.batch_size, getattr(self, "seed", 0),
            self.weight_decay,
        )


def _checkpoint_model(parent: str | None) -> str | None:
    if parent is None or not Path(parent).is_file():
        return None  # a missing file is reported where the checkpoint is loaded
    from ..train import read_meta

    return read_meta(parent).get("model")


@dataclass(kw_only=True)
class EnsembleFields(RunConfig):
    """How the members vote and how the ensemble is scored."""

    include_parent: bool = option(False, "the parent votes too", group="ensemble")
    combine: str = option(
        "mean", "mean of probabilities, or majority vote", choices=COMBINE_METHODS, group="ensemble"
    )
    ece_bins: int = option(
        DEFAULT_ECE_BINS,
        "equal-width confidence bins of the ECE",
        check=check_positive_int,
        group="ensemble",
    )
    corrupted_examples: int | None = option(
        1000,
        "score the corrupted test set (when the data set has one) on the first N images of each "
        "type x severity (every image: 10000); all 115 cells are always scored",
        check=check_positive_int,
        group="ensemble",
    )
    ood_sets: str = option(
        "auto",
        "out-of-distribution sets to score (detection AUROC/AUPR/FPR95): comma-separated names, "
        "auto (every set of this data set that is on disk) or none; made by "
        "python -m evo_ensembles.data.ood",
        metavar="NAMES",
        group="ensemble",
    )

    def ood_names(self) -> list[str] | None:
        """The OOD sets asked for: ``None`` for every set on disk, ``[]`` for none."""
        key = self.ood_sets.strip().lower()
        if key == "auto":
            return None
        if key in ("none", ""):
            return []
        return [n.strip() for n in key.split(",") if n.strip()]

    def check(self) -> None:
        super().check()
        names = self.ood_names()
        dataset = getattr(self, "dataset", None)
        if names and dataset:
            from ..data.catalog import split_corrupted_name
            from ..data.ood import available_ood_sets
            from ..errors import UnknownNameError

            offered = available_ood_sets(split_corrupted_name(dataset)[0])
            unknown = [n for n in names if n not in offered]
            if unknown:
                raise UnknownNameError(f"--ood-sets: unknown OOD set {unknown[0]!r} for {dataset}; choose from "
                                       f"{', '.join(offered) or '(none offered)'}, auto or none")


__all__ = ["DEFAULT_MODEL", "DataFields", "EnsembleFields", "ParentFields", "RuntimeFields", "TrainingFields"]
