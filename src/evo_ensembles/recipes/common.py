"""Pieces every run shares: output directories, parents, evaluation and result files."""

from __future__ import annotations

import datetime as _dt
import hashlib
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


def ood_inputs(cfg: Any, data: DataSplits) -> dict[str, Any]:
    """The OOD sets a run scores: those ``cfg.ood_sets`` names (every one on disk for
    ``auto``), normalised like ``data``, plus any the caller attached as ``data.ood``
    (a dict of name → :class:`~evo_ensembles.data.ArrayData`, e.g. from ``ood_from``)."""
    from ..data.ood import ood_sets

    names = cfg.ood_names() if hasattr(cfg, "ood_names") else None
    found = {} if names == [] else ood_sets(data, names, getattr(cfg, "data_root", None))
    return {**found, **(getattr(data, "ood", None) or {})}


# What counts as the code a result was made with: the package, the benchmark scripts (not
# their results/), the pinned requirements and the build file. Result files a run writes
# (runs/, benchmarks/results/, ...) never make the code "dirty".
CODE_PATHS = ("src", ":(glob)benchmarks/*.py", "requirements", "pyproject.toml")
# Untracked (and not ignored) files that are code: new modules and scripts, new requirement files.
UNTRACKED_CODE = (":(glob)src/**/*.py", ":(glob)benchmarks/*.py", "requirements")


def _checkout() -> Path | None:
    """The root of the checkout this package runs from (``None`` when it is installed)."""
    package = Path(__file__).resolve().parents[1]
    return package.parent.parent if package.parent.name == "src" else None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=30)


def git_commit(root: str | Path | None = None) -> str | None:
    """The full commit (40 hex digits, no suffix) of the checkout at ``root`` (default: the
    one this package runs from); ``None`` when it is not a git checkout."""
    return code_provenance(root)["commit"]


def code_provenance(root: str | Path | None = None) -> dict[str, Any]:
    """``commit``, ``code_dirty`` and ``code_diff_sha256`` of the checkout at ``root``.

    ``code_dirty``: whether the code (:data:`CODE_PATHS`) differs from ``commit``: a tracked
    change (staged or not) or an untracked, not ignored code file (:data:`UNTRACKED_CODE`).
    Result files a run writes do not count. ``code_diff_sha256``: when dirty, the SHA-256 of
    ``git diff HEAD`` of those paths followed by each untracked code file's path and content
    (so two runs with the same hash ran the same code); ``None`` when clean. All three are
    ``None`` outside a git checkout.
    """
    unknown = {"commit": None, "code_dirty": None, "code_diff_sha256": None}
    root = _checkout() if root is None else Path(root)
    if root is None:
        return unknown
    try:
        head = _git(root, "rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return unknown
        commit = head.stdout.decode().strip()
        # Fixed options, so the hash does not depend on a user's git configuration.
        diff = _git(root, "diff", "HEAD", "--binary", "--full-index", "--no-color", "--no-ext-diff",
                    "--no-textconv", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/", "-U3",
                    "--diff-algorithm=myers", "--", *CODE_PATHS)
        listed = _git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", *UNTRACKED_CODE)
        if diff.returncode != 0 or listed.returncode != 0:
            return {**unknown, "commit": commit}
        untracked = sorted(n for n in listed.stdout.decode().split("\0") if n)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return unknown
    if not diff.stdout and not untracked:
        return {"commit": commit, "code_dirty": False, "code_diff_sha256": None}
    h = hashlib.sha256(diff.stdout)
    for name in untracked:
        try:
            content = (root / name).read_bytes()
        except OSError:
            content = b""  # vanished since it was listed
        h.update(b"\0untracked " + name.encode() + b"\0" + content)
    return {"commit": commit, "code_dirty": True, "code_diff_sha256": h.hexdigest()}


def provenance(root: str | Path | None = None) -> dict[str, Any]:
    """Versions, hardware, code (:func:`code_provenance`) and time written next to every result
    (the keys of :class:`evo_ensembles.results.Provenance`)."""
    return {
        "library_version": __version__,
        **code_provenance(root),
        "hardware": hardware_info(),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
