"""The ``sparse`` run: train (or load) a parent, prune-and-tune children, report.

Writes into ``out``: ``config.json``, ``results.json`` (stable keys), ``report.md``,
``figures/*.png`` and ``checkpoints/`` (``parent.safetensors`` + ``parent.json``, reusable
with ``--parent``; one file per child). Re-running with the same ``out`` resumes: a trained
parent and finished children are reused, an interrupted training continues from its last
epoch, and asking for more children grows the ensemble.

Example:
    >>> from evo_ensembles.recipes.sparse import SparseRunConfig, run_sparse
    >>> cfg = SparseRunConfig(model="lenet-5", parent_epochs=1, children=2, subset=512)
    >>> results = run_sparse(cfg, "runs/demo", progress=False)     # doctest: +SKIP
    >>> results["ensemble"]["accuracy"]                             # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..data import dataset_augment, load_dataset
from ..devices import resolve_device, set_threads
from ..ensemble import COMBINE_METHODS
from ..errors import UserError
from ..methods.sparse import child_train_config, steps_per_epoch
from ..methods.stochastic import build_child
from ..metrics import DEFAULT_ECE_BINS
from ..models import build_model
from ..reporting import markdown_table, plot_heatmap, plot_member_accuracy, text_table
from ..subnet import (
    ChildSpec,
    eligible_parameters,
    make_child_specs,
    mask_density,
    resolve_dense_layers,
)
from ..train import TrainConfig, fit, load_state_into, load_tensors, read_meta, save_model
from ..train.checkpoint import write_json, write_text
from .common import (
    check_output_dir,
    evaluate_ensemble,
    load_model_checkpoint,
    model_meta,
    parent_train_config,
    provenance,
    train_or_load_parent,
)

TUNE_SCHEDULES = ("one-cycle", "constant")
# Children's peak lr is this times the parent's unless set (benchmarks/results/regime.md:
# chosen on validation from 1x and 3x).
CHILD_LR_FACTOR = 3.0


@dataclass
class SparseRunConfig:
    """Settings of a ``sparse`` run (the CLI flags, one field each).

    The defaults are the settings the regime study chose on validation
    (benchmarks/results/regime.md): parent 8 epochs without augmentation; 4 children at
    density 0.75 (independent masks) with the first and last layers kept dense, each tuned
    3 epochs with one-cycle at 3 × the parent's lr.

    Attributes:
        dataset, model: registry names (``evo_ensembles.data`` / ``evo_ensembles.models``).
        parent_epochs: epochs to train the parent (ignored with ``parent``).
        children, child_epochs: ensemble size and tuning epochs per child.
        density: fraction of eligible weights each child keeps (1/k with ``partition``).
        partition, k: neural partitioning into k disjoint subnetworks (k=2: mask/anti-mask).
        structured, scope: neuron/filter masks; layerwise ("local") or "global" budget.
        selection: ``random`` masks, or ``magnitude`` (keep the largest |W|; independent
            masks only) — the L1 pruning baseline.
        prune_epochs: 0 prunes in one shot; E_p > 0 prunes iteratively, an equal share at
            the start of each of the first E_p tuning epochs (independent masks only).
        tune: child schedule, ``one-cycle`` (peak ``child_lr``) or ``constant``.
        optimizer, lr: for the parent and children; ``child_lr`` defaults to
            ``CHILD_LR_FACTOR`` (3) × ``lr``.
        include_parent, combine: the parent votes too; ``mean`` of probabilities or ``vote``.
        subset, val_fraction, data_root, augment: data options (``augment``: random
            crop/flip while training the parent, and the children unless ``child_augment``).
        child_augment: augmentation while tuning children; ``None`` follows ``augment``.
        parent: path of an existing parent checkpoint (``.safetensors``) to start from.
        dense_layers: the pruning scope — layers every child keeps exactly as the parent's
            (``first``, ``last`` or name prefixes); empty prunes every Linear/Conv weight.
    """

    dataset: str = "fashion-mnist"
    model: str = "lenet-s"
    parent_epochs: int = 8
    children: int = 4
    child_epochs: int = 3
    density: float = 0.75
    partition: bool = False
    k: int = 2
    structured: bool = False
    scope: str = "local"
    selection: str = "random"
    prune_epochs: int = 0
    tune: str = "one-cycle"
    optimizer: str = "adam"
    lr: float = 1e-3
    child_lr: float | None = None
    batch_size: int = 128
    seed: int = 0
    subset: int | None = None
    val_fraction: float = 0.1
    data_root: str | None = None
    augment: bool = False
    child_augment: bool | None = None
    include_parent: bool = False
    combine: str = "mean"
    ece_bins: int = DEFAULT_ECE_BINS
    device: str = "auto"
    threads: int | None = None
    parent: str | None = None
    dense_layers: tuple[str, ...] = ("first", "last")

    # What a subclass changes to run another tuned-children method through this recipe.
    METHOD: ClassVar[str] = "sparse"
    TITLE: ClassVar[str] = "Sparse Subnetwork Ensemble"

    def validate(self) -> None:
        """Check every value a user can get wrong, before any work or file is made."""
        if not 0.0 < self.density <= 1.0:
            raise UserError(f"--density must be in (0, 1], got {self.density}")
        if self.partition and self.k < 2:
            raise UserError(f"--k must be >= 2 for a partition, got {self.k}")
        if self.children < 1:
            raise UserError(f"--children must be >= 1, got {self.children}")
        if self.tune not in TUNE_SCHEDULES:
            raise UserError(f"--tune must be one of {TUNE_SCHEDULES}, got {self.tune!r}")
        if self.combine not in COMBINE_METHODS:
            raise UserError(f"--combine must be one of {COMBINE_METHODS}, got {self.combine!r}")
        if self.ece_bins < 1:
            raise UserError(f"--ece-bins must be >= 1, got {self.ece_bins}")
        if self.partition and abs(self.density - 1.0 / self.k) > 1e-9:
            raise UserError(f"with --partition each child keeps 1/k of the weights: use "
                            f"--density {1 / self.k:.4g} for k={self.k}, or --no-partition")
        if self.prune_epochs < 0 or self.prune_epochs > self.child_epochs:
            raise UserError(f"--prune-epochs must be in [0, --child-epochs={self.child_epochs}], "
                            f"got {self.prune_epochs}")
        self.parent_train_config()
        self.child_train_config()
        self.child_specs()  # descriptor-level checks (e.g. magnitude or iterative with a partition)

    def parent_train_config(self) -> TrainConfig:
        return parent_train_config(self.parent_epochs, self.lr, self.optimizer, self.batch_size, self.seed)

    def child_train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.child_epochs, lr=self.child_lr or CHILD_LR_FACTOR * self.lr,
                           optimizer=self.optimizer, schedule=self.tune,
                           batch_size=self.batch_size, seed=self.seed)

    def child_specs(self) -> list[ChildSpec]:
        extra = {"prune_epochs": self.prune_epochs} if self.prune_epochs else {}
        return make_child_specs(self.children, self.density, partition=self.partition, k=self.k,
                                seed=self.seed, structured=self.structured, scope=self.scope,
                                selection=self.selection, dense_layers=tuple(self.dense_layers),
                                **extra)

    def build_child(self, parent, spec: ChildSpec, steps: int):
        """A copy of ``parent`` for ``spec`` and its callback (one-shot, iterative or stochastic)."""
        return build_child(parent, spec, self.child_train_config(), steps)

    def extra_results(self) -> dict[str, Any]:
        """Method-specific keys added to results.json (none for ``sparse``)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_sparse(cfg: SparseRunConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole Prune-and-Tune pipeline; returns the results dict also saved to disk.

    ``cfg`` may be a subclass (e.g. ``StochasticRunConfig``): its ``build_child``,
    ``METHOD``, ``TITLE`` and ``extra_results`` make the same pipeline another method.
    """
    t_start = time.perf_counter()
    cfg.validate()
    out = check_output_dir(out)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_root, val_fraction=cfg.val_fraction,
                        subset=cfg.subset, seed=cfg.seed, augment=cfg.augment)
    probe = build_model(cfg.model, data.input_shape, data.num_classes)  # unknown names fail here
    resolve_dense_layers(eligible_parameters(probe), cfg.dense_layers)  # so do unknown layers
    if cfg.parent is not None:  # a checkpoint that does not fit fails before --out is made
        load_model_checkpoint(cfg.parent, data, cfg.model)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    parent, parent_meta, parent_s = train_or_load_parent(
        out, data, cfg.model, cfg.parent_train_config(), parent_path=cfg.parent,
        device=device, progress=progress)
    if cfg.parent is not None:  # keep a copy so the run directory is self-contained
        save_model(out / "checkpoints" / "parent.safetensors", parent,
                   {**model_meta(parent_meta["model"], data), "source": str(cfg.parent)})

    specs = cfg.child_specs()
    children, densities, child_s = _children(out, cfg, parent, parent_meta["model"], data, specs,
                                             device, progress)
    t_eval = time.perf_counter()
    test = evaluate_ensemble(parent, children, data.test.x, data.test.y,
                             include_parent=cfg.include_parent, combine_method=cfg.combine,
                             ece_bins=cfg.ece_bins)
    val = evaluate_ensemble(parent, children, data.val.x, data.val.y,
                            include_parent=cfg.include_parent, combine_method=cfg.combine,
                            ece_bins=cfg.ece_bins) if len(data.val) else None
    eval_s = time.perf_counter() - t_eval

    results: dict[str, Any] = {
        "method": cfg.METHOD,
        "split": "test",
        "ece_bins": cfg.ece_bins,
        "parent": test["parent"],
        "members": [
            {**m, "density": d, "tune_seconds": s, "descriptor": spec.to_dict()}
            for m, d, s, spec in zip(test["members"], densities, child_s, specs)
        ],
        "ensemble": {**test["ensemble"], "size": len(children) + int(cfg.include_parent),
                     "combine": cfg.combine, "include_parent": cfg.include_parent},
        "diversity": test["diversity"],
        "validation": None if val is None else {"parent": val["parent"], "ensemble": val["ensemble"]},
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "data": data.describe(),
        "timing": {
            "parent_train_seconds": parent_s,
            "children_train_seconds": sum(child_s),
            "eval_seconds": eval_s,
            "total_seconds": time.perf_counter() - t_start,
            "note": "train seconds count work done in this invocation (0 when reused)",
        },
        **cfg.extra_results(),
        **provenance(),
    }
    _write_outputs(out, results, cfg.TITLE)
    return results


def _children(out, cfg, parent, model_name, data, specs, device, progress):
    """Build and tune each child, reusing children already saved in ``out``."""
    child_dir = out / "checkpoints" / "children"
    tune_cfg = cfg.child_train_config()
    steps = steps_per_epoch(len(data.train), tune_cfg.batch_size)
    augment = data.augment
    if cfg.child_augment is not None and cfg.child_augment != cfg.augment:
        augment = dataset_augment(cfg.dataset) if cfg.child_augment else None
    children, densities, seconds = [], [], []
    for i, spec in enumerate(specs):
        path = child_dir / f"child_{i}.safetensors"
        key = {"descriptor": spec.to_dict(), "tune": tune_cfg.to_dict(), "parent": str(parent_key(out))}
        if augment is not data.augment:  # only then, so keys of earlier runs still match
            key["augment"] = augment is not None
        child, keeper = cfg.build_child(parent, spec, steps)
        if path.is_file() and read_meta(path).get("run_key") == key:
            load_state_into(child, load_tensors(path), str(path))
            seconds.append(0.0)
        else:
            resume = child_dir / f"child_{i}_resume" if getattr(keeper, "resumable", True) else None
            res = fit(child, data.train, child_train_config(tune_cfg, cfg.seed, i), callbacks=[keeper],
                      val=data.val, augment=augment, device=device, checkpoint_dir=resume,
                      progress=progress, desc=f"child {i + 1}/{len(specs)}")
            save_model(path, child, {**model_meta(model_name, data), "run_key": key,
                                     "descriptor": spec.to_dict(), "history": res.history})
            seconds.append(res.seconds)
        children.append(child)
        densities.append(mask_density(keeper.mask))
    return children, densities, seconds


def parent_key(out: Path) -> str:
    """Identifies the parent children were tuned from (its checkpoint's run key or source)."""
    meta = read_meta(out / "checkpoints" / "parent.safetensors")
    return str(meta.get("run_key") or meta.get("source") or "")


def summary_rows(results: dict[str, Any]) -> list[list[object]]:
    p, e = results["parent"], results["ensemble"]
    return [
        ["parent", p["accuracy"], p["nll"], p["ece"], p["brier"]],
        [f"ensemble ({e['size']}, {e['combine']})", e["accuracy"], e["nll"], e["ece"], e["brier"]],
    ]


SUMMARY_HEADERS = ["model", "accuracy", "NLL", "ECE", "Brier"]


def _report(results: dict[str, Any], title: str) -> str:
    cfg = results["config"]
    members = [[i + 1, m["accuracy"], m["nll"], m["ece"], m["density"], m["descriptor"]["part"]
                if m["descriptor"]["k"] else "-"] for i, m in enumerate(results["members"])]
    div = results["diversity"]
    return "\n\n".join([
        f"# {title} — {cfg['model']} on {cfg['dataset']}",
        f"Test split, {results['data']['sizes']['test']} examples; ECE with {results['ece_bins']} "
        f"equal-width bins; seed {results['seed']}; commit {results['commit']}.",
        markdown_table(SUMMARY_HEADERS, summary_rows(results)),
        *([f"Annealing: {results['annealing']}"] if "annealing" in results else []),
        "## Members",
        markdown_table(["member", "accuracy", "NLL", "ECE", "density", "partition part"], members),
        "## Diversity (off-diagonal means over member pairs)",
        markdown_table(["disagreement", "KL", "correlation"],
                       [[div["disagreement"], div["kl"], div["correlation"]]]),
        "## Timing (seconds)",
        markdown_table(list(results["timing"])[:-1], [list(results["timing"].values())[:-1]]),
        "![members](figures/member_accuracy.png)\n\n![disagreement](figures/disagreement.png)",
    ]) + "\n"


def _write_outputs(out: Path, results: dict[str, Any], title: str) -> None:
    figs = out / "figures"
    plot_member_accuracy(figs / "member_accuracy.png", [m["accuracy"] for m in results["members"]],
                         results["parent"]["accuracy"], results["ensemble"]["accuracy"],
                         title=f"{results['config']['model']} on {results['config']['dataset']}")
    if len(results["members"]) > 1:
        plot_heatmap(figs / "disagreement.png", results["diversity"]["matrices"]["disagreement"],
                     "prediction disagreement", "fraction of test inputs")
    write_text(out / "report.md", _report(results, title))
    write_json(out / "results.json", results)


def print_summary(results: dict[str, Any]) -> str:
    """The parent-vs-ensemble table the CLI prints."""
    return text_table(SUMMARY_HEADERS, summary_rows(results))


__all__ = ["SparseRunConfig", "print_summary", "run_sparse"]
