"""A network on disk and back: the record a saved model carries, loading it (with or without
the data set it was trained on), and a run's parent trained or loaded.

Examples:
    >>> import tempfile, torch
    >>> from evo_ensembles import build_model, save_model
    >>> net = build_model("lenet-s", (1, 28, 28), 10, seed=0)
    >>> path = f"{tempfile.mkdtemp()}/net.safetensors"
    >>> save_model(path, net, {"model": "lenet-s", "input_shape": [1, 28, 28], "num_classes": 10})
    >>> back = load_model(path)
    >>> x = torch.randn(2, 1, 28, 28)
    >>> bool(torch.equal(back(x), net.eval()(x)))
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError, UserError
from ..run_folder import LAYOUT
from ..schema import MODEL_RECORD
from .checkpoint import checkpoint_path, load_state_into, load_tensors, read_meta, save_model
from .config import TrainConfig
from .loop import fit

if TYPE_CHECKING:
    from ..data.registry import DataSplits

MODEL_FORMAT = "evo_ensembles.model/1"


def model_meta(model_name: str, data: DataSplits, **extra: Any) -> dict[str, Any]:
    """What a checkpoint needs to rebuild its model and to check it fits the data."""
    return {
        "format": MODEL_FORMAT,
        "library_version": __version__,
        "model": model_name,
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "dataset": data.name,
        "normalisation": {"mean": list(data.mean), "std": list(data.std)},
        **extra,
    }


def load_model_checkpoint(
    path: str | Path, data: DataSplits | None = None, model_name: str | None = None, dropout: float = 0.0
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by this toolkit (or a state dict matching ``model_name``), with its
    metadata.

    The model name comes from the checkpoint's JSON; an explicit ``model_name`` that
    disagrees with it, input shapes or class counts that do not match ``data``, or weights
    that do not fit the architecture all raise :class:`CheckpointError`. Without ``data`` the
    input shape and class count come from the checkpoint's own record.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    meta = MODEL_RECORD.check(read_meta(path), str(path))
    saved = meta.get("model")
    if saved and model_name and saved.lower() != model_name.lower():
        raise CheckpointError(f"checkpoint {path} holds a {saved!r} model, not {model_name!r}")
    name = saved or model_name
    if not name:
        raise CheckpointError(f"checkpoint {path} has no metadata; say which --model it is")
    if data is None:
        if not (meta.get("input_shape") and meta.get("num_classes")):
            raise CheckpointError(f"checkpoint {path} does not record its input shape and class count; "
                                  "pass the data set it was trained on (data=)")
        input_shape, num_classes = tuple(meta["input_shape"]), int(meta["num_classes"])
    else:
        if meta.get("input_shape") and tuple(meta["input_shape"]) != tuple(data.input_shape):
            raise CheckpointError(
                f"checkpoint {path} expects inputs {tuple(meta['input_shape'])}, "
                f"data set {data.name} has {tuple(data.input_shape)}"
            )
        if meta.get("num_classes") and meta["num_classes"] != data.num_classes:
            raise CheckpointError(
                f"checkpoint {path} has {meta['num_classes']} classes, data set {data.name} has {data.num_classes}"
            )
        input_shape, num_classes = tuple(data.input_shape), data.num_classes
    from ..models import build_model  # on use: the models package loads torchvision

    model = build_model(name, input_shape, num_classes, dropout=dropout)
    load_state_into(model, load_tensors(path), str(path))
    return model, {**meta, "model": name}


def load_model(path: str | Path, data: DataSplits | None = None, *, model_name: str | None = None,
               dropout: float = 0.0) -> nn.Module:
    """The counterpart of :func:`~evo_ensembles.train.save_model`: the saved network, rebuilt
    and in eval mode (a run's ``checkpoints/parent.safetensors``, a child, your own save).
    See :func:`load_model_checkpoint` for the checks and for the metadata too."""
    return load_model_checkpoint(path, data, model_name, dropout)[0].eval()


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
    ckpt = out / LAYOUT.parent
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
    from ..models import build_model

    model = build_model(model_name, data.input_shape, data.num_classes, dropout=dropout, seed=cfg.seed)
    result = fit(model, data.train, cfg, val=data.val, augment=data.augment, device=device,
                 checkpoint_dir=out / LAYOUT.parent_resume, progress=progress,
                 desc="parent")
    meta = model_meta(model_name, data, run_key=key, train=cfg.to_dict(), history=result.history)
    save_model(ckpt, model, meta)
    return model, meta, result.seconds


__all__ = ["MODEL_FORMAT", "load_model", "load_model_checkpoint", "model_meta", "train_or_load_parent"]
