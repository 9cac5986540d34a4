"""Pieces every run shares: output directories, parents, evaluation and result files."""

from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..data import DataSplits
from ..devices import hardware_info
from ..errors import CheckpointError, UserError
from ..metrics import ensemble_metrics
from ..models import build_model
from ..schema import MODEL_RECORD
from ..train import (
    TrainConfig,
    checkpoint_path,
    fit,
    load_state_into,
    load_tensors,
    read_meta,
    save_model,
)


def model_meta(model_name: str, data: DataSplits, **extra: Any) -> dict[str, Any]:
    """What a checkpoint needs to rebuild its model and to check it fits the data."""
    return {
        "format": "evo_ensembles.model/1",
        "library_version": __version__,
        "model": model_name,
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "dataset": data.name,
        "normalisation": {"mean": list(data.mean), "std": list(data.std)},
        **extra,
    }


def load_model_checkpoint(
    path: str | Path, data: DataSplits, model_name: str | None = None, dropout: float = 0.0
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by this toolkit (or a state dict matching ``model_name``).

    The model name comes from the checkpoint's JSON; an explicit ``model_name`` that
    disagrees with it, input shapes or class counts that do not match the data, or weights
    that do not fit the architecture all raise :class:`CheckpointError`.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"parent checkpoint not found: {path}")
    meta = MODEL_RECORD.check(read_meta(path), str(path))
    saved = meta.get("model")
    if saved and model_name and saved.lower() != model_name.lower():
        raise CheckpointError(f"checkpoint {path} holds a {saved!r} model, not {model_name!r}")
    name = saved or model_name
    if not name:
        raise CheckpointError(f"checkpoint {path} has no metadata; say which --model it is")
    if meta.get("input_shape") and tuple(meta["input_shape"]) != tuple(data.input_shape):
        raise CheckpointError(
            f"checkpoint {path} expects inputs {tuple(meta['input_shape'])}, "
            f"data set {data.name} has {tuple(data.input_shape)}"
        )
    if meta.get("num_classes") and meta["num_classes"] != data.num_classes:
        raise CheckpointError(
            f"checkpoint {path} has {meta['num_classes']} classes, data set {data.name} has {data.num_classes}"
        )
    model = build_model(name, data.input_shape, data.num_classes, dropout=dropout)
    load_state_into(model, load_tensors(path), str(path))
    return model, {**meta, "model": name}


def train_or_load_parent(
    out: Path,
    data: DataSplits,
    model_name: str,
    cfg: TrainConfig,
    *,
    parent_path: str | Path | None,
    device: torch.device,
    progress: bool,
    dropout: float = 0.0,
) -> tuple[nn.Module, dict[str, Any], float]:
    """The parent: loaded from ``parent_path``, reused from ``out``, or trained (resumably).

    Returns the model, its metadata and the seconds spent training it now.
    """
    ckpt = out / "checkpoints" / "parent.safetensors"
    if parent_path is not None:
        model, meta = load_model_checkpoint(parent_path, data, model_name)
        return model.to(device), meta, 0.0
    key = {"model": model_name, "train": cfg.to_dict(), "data": data.describe()}
    if ckpt.is_file():
        meta = read_meta(ckpt)
        if meta.get("run_key") != key:
            raise UserError(f"{out} holds a parent trained with other settings; use a new --out")
        model, meta = load_model_checkpoint(ckpt, data, model_name)
        return model.to(device), meta, 0.0
    model = build_model(model_name, data.input_shape, data.num_classes, dropout=dropout, seed=cfg.seed)
    result = fit(model, data.train, cfg, val=data.val, augment=data.augment, device=device,
                 checkpoint_dir=out / "checkpoints" / "parent_resume", progress=progress,
                 desc="parent")
    meta = model_meta(model_name, data, run_key=key, train=cfg.to_dict(), history=result.history)
    save_model(ckpt, model, meta)
    return model, meta, result.seconds


def parent_cost(parent: nn.Module, parent_meta: dict[str, Any], data: DataSplits,
                batch_size: int) -> tuple[float | None, float | None]:
    """FLOPs and epochs of the parent's training, from the training record in its checkpoint
    (``(None, None)`` for a checkpoint without one)."""
    from ..baselines.common import training_flops

    train = parent_meta.get("train")
    epochs = train.get("epochs") if isinstance(train, dict) else None
    if not isinstance(epochs, (int, float)):
        return None, None
    bs = int(train.get("batch_size", batch_size))
    return training_flops(parent, data, bs, epochs * len(data.train)), float(epochs)


def subnetwork_cost(parent: nn.Module, parent_meta: dict[str, Any], data: DataSplits, batch_size: int,
                    children: list[tuple[dict[str, torch.Tensor], list[tuple[float, float]]]]) -> dict[str, Any]:
    """Training cost of a subnetwork ensemble (SPEC §5): the parent's dense training plus
    each child's tuning at its density, relative to one dense model trained for as many
    epochs as the parent and children together (the paper's 0.85× for the sparse ensembles).

    ``children``: ``(mask, [(epochs, extra_density), ...])`` per child: its tuning phases,
    each at the mask's density plus the expected active share of its pruned weights
    (0 after pruning; stochastic annealing keeps more); an empty mask is a dense child.
    """
    from ..baselines.common import masked_training_flops, training_flops
    from ..flops import TrainingCost

    flops, epochs = parent_cost(parent, parent_meta, data, batch_size)
    if flops is None:
        return {"training_flops": None, "epochs": None, "training_cost": None}
    n = len(data.train)
    for mask, phases in children:
        for child_epochs, extra in phases:
            flops += (masked_training_flops(parent, mask, data, batch_size, child_epochs * n, extra_density=extra)
                      if mask else training_flops(parent, data, batch_size, child_epochs * n))
            epochs += child_epochs
    ref = training_flops(parent, data, batch_size, epochs * n)
    cost = TrainingCost(flops, ref, epochs, epochs)
    return {"training_flops": cost.relative, "epochs": epochs, "training_cost": cost.to_dict()}


def evaluate_probs(
    parent_p: torch.Tensor,
    member_p: torch.Tensor,
    y: torch.Tensor,
    *,
    include_parent: bool,
    combine_method: str,
    ece_bins: int,
) -> dict[str, Any]:
    """Parent, per-member and ensemble metrics plus diversity from (B, C) and (M, B, C) probs."""
    return ensemble_metrics(parent_p, member_p, y, include_parent=include_parent,
                            combine_method=combine_method, ece_bins=ece_bins)


def corrupted_scores(
    data: DataSplits,
    predictors: dict[str, Any],
    *,
    ece_bins: int,
    examples: int | None = None,
    progress: bool = False,
) -> dict[str, Any] | None:
    """cAcc/cNLL/cECE (:func:`evo_ensembles.metrics.corruption_summary`) of each predictor on
    the data set's corrupted test set, or ``None`` when it has none.

    ``predictors``: name (``"parent"``, ``"ensemble"``) → function from inputs (B, ...) to
    combined probabilities (B, C). ``examples``: only the first N images of every cell.
    One (type, severity) is in memory at a time.
    """
    from tqdm.auto import tqdm

    from ..metrics import classification_metrics, corruption_summary

    if getattr(data, "corrupted", None) is None:
        return None
    cs = data.corrupted if examples is None else data.corrupted.head(examples)
    cells: dict[str, list[dict]] = {k: [] for k in predictors}
    for kind, severity, part in tqdm(cs, total=len(cs), desc="corrupted test", disable=not progress, leave=False):
        for name, predict in predictors.items():
            m = classification_metrics(predict(part.x), part.y, ece_bins)
            cells[name].append({"type": kind, "severity": severity, **m})
    return {"set": cs.describe(), **{k: corruption_summary(v) for k, v in cells.items()}}


def git_commit() -> str | None:
    """The commit of the source tree this run used, when it is a git checkout."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (out.stdout.strip() + ("-dirty" if dirty else "")) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    """Versions, hardware, commit and time written next to every result."""
    return {
        "library_version": __version__,
        "commit": git_commit(),
        "hardware": hardware_info(),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
