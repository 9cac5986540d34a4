"""Checkpoints: one safetensors file each, the JSON metadata in its header.

A checkpoint is atomic as a unit: tensors and record are written together to a temporary
file that is then renamed, so a crash leaves the old checkpoint or the new one, never a
torn pair. Nothing is ever unpickled. Checkpoints of older versions (tensors in
``x.safetensors``, metadata in ``x.json`` beside them) still load.

Examples:
    >>> import tempfile, pathlib, torch.nn as nn
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> save_model(d / "net.safetensors", nn.Linear(2, 2), {"model": "custom"})
    >>> sorted(p.name for p in d.iterdir()), read_meta(d / "net.safetensors")
    (['net.safetensors'], {'model': 'custom'})
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError
from ..run_folder import _json_default, atomic_write, write_json
from ..schema import TRAIN_STATE, Schema

META_KEY = "evo_ensembles"  # the safetensors header entry holding a checkpoint's JSON record


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                 meta: Mapping[str, Any] | None = None) -> None:
    """Atomically save a flat dict of tensors (cloned to contiguous CPU storage) and, in the
    same file's header, the JSON record ``meta``."""
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = None if meta is None else {META_KEY: json.dumps(dict(meta), default=_json_default)}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=header))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None


def meta_path(path: str | os.PathLike) -> Path:
    """``x.safetensors`` → ``x.json`` (where older versions kept the metadata)."""
    return Path(path).with_suffix(".json")


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint a user means: ``x.json`` (an older version's record) names ``x.safetensors``."""
    path = Path(path)
    if path.suffix == ".json" and path.with_suffix(".safetensors").is_file():
        return path.with_suffix(".safetensors")
    return path


def save_model(path: str | os.PathLike, model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Save ``model.state_dict()`` and ``meta`` to the one checkpoint file ``path``."""
    save_tensors(path, model.state_dict(), meta)
    meta_path(path).unlink(missing_ok=True)  # an older version's record must not outlive it


def _header(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata()
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON record of a checkpoint ({} when there is none).

    Read from the checkpoint's own header; for checkpoints of older versions, from the
    ``.json`` file beside it.
    """
    path = Path(path)
    header = _header(path) if path.is_file() else None
    if header and META_KEY in header:
        source, text = f"{path} (header)", header[META_KEY]
        return parse_record(text, source)
    record = read_sidecar(meta_path(path))
    return {} if record is None else record


def parse_record(text: str, source: str) -> dict[str, Any]:
    """A checkpoint's JSON record from ``text``; one clear error when it is not a JSON object."""
    try:
        record = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"cannot parse the record in {source}: {e}") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"the record in {source} is not a JSON object")
    return record


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The JSON record an older version kept beside its checkpoint (``None`` when absent)."""
    if not path.is_file():
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    return parse_record(text, str(path))


def load_state_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load weights strictly; a mismatch becomes one clear :class:`CheckpointError`."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} with wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"checkpoint {source} does not fit the model: " + "; ".join(detail))
    model.load_state_dict(state, strict=True)


# --- training state (resume) ---------------------------------------------------------


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, Any] = {"param_groups": state["param_groups"], "scalars": {}}
    for idx, pstate in state["state"].items():
        for key, val in pstate.items():
            name = f"optim.{idx}.{key}"
            if isinstance(val, torch.Tensor):
                tensors[name] = val
            else:
                rest["scalars"][name] = val
    return tensors, rest


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    items = [(k, v) for k, v in tensors.items() if k.startswith("optim.")]
    items += list(rest.get("scalars", {}).items())
    for name, val in items:
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = val
    return {"state": state, "param_groups": rest["param_groups"]}


def save_train_state(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    info: Mapping[str, Any],
    extra: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Save everything needed to resume after an interruption (model, optimizer, progress,
    and ``extra`` tensors such as callbacks' state, named ``callback.<i>.<name>``), as one
    file, so weights and progress record can never disagree."""
    directory = Path(directory)
    opt_tensors, opt_rest = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | opt_tensors | dict(extra or {})
    save_tensors(directory / "train_state.safetensors", tensors, {**info, "optimizer": opt_rest})


def load_train_state(
    directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    """Restore a saved training state into ``model``/``optimizer``; ``None`` if there is none."""
    directory = Path(directory)
    state = directory / "train_state.safetensors"
    if not state.is_file():
        return None
    header = _header(state) or {}
    if META_KEY not in header:  # an older version's two-file state: it may be a torn pair
        raise CheckpointError(f"{directory} holds a resume state in an older two-file format that "
                              "cannot be checked; delete it to start that training over")
    info = TRAIN_STATE.check(read_meta(state), str(state))
    tensors = load_tensors(state)
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state_into(model, model_state, str(directory))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, info.pop("optimizer")))
    callbacks: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("callback."):
            _, i, name = k.split(".", 2)
            callbacks.setdefault(i, {})[name] = v
    return {**info, "callback_state": callbacks}


def clear_train_state(directory: str | os.PathLike) -> None:
    """Remove a finished run's resume files."""
    directory = Path(directory)
    for name in ("train_state.safetensors", "train_state.json"):
        (directory / name).unlink(missing_ok=True)
    try:
        directory.rmdir()  # only when empty: never removes a user's files
    except OSError:
        pass


def parent_fingerprint(model: nn.Module) -> str:
    """The parent's identity: SHA-256 over the names, shapes, dtypes and bytes of its state dict.

    It keys every cache of children (tuned children in a run directory, noisy-ensemble
    descriptor files), so a child is only ever reused with the exact parent it came from.
    """
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _fits(key: str, record: Any, schemas: Mapping[str, Schema]) -> bool:
    if not isinstance(record, dict):
        return False
    return all(s.problem(record) is None for prefix, s in schemas.items() if key.startswith(prefix))


class RecordCache(MutableMapping):
    """A dict of JSON records kept in one file, rewritten atomically on every new record.

    Long evaluations (a noisy population, a trust-region grid) store each finished record
    here, so an interrupted run redoes none of them. ``identity`` says what the records are
    valid for (e.g. the parent's fingerprint and the data); a file made for another identity
    is ignored and replaced. ``schemas`` maps a key prefix to the :class:`~evo_ensembles.schema.Schema`
    its records must fit; a record that does not (a damaged or hand-edited file) is dropped
    and so computed again.

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "records.json"
        >>> c = RecordCache(path, identity={"parent": "abc"})
        >>> c["child 0"] = {"fitness": 0.9}
        >>> dict(RecordCache(path, identity={"parent": "abc"})), len(RecordCache(path, identity={"parent": "x"}))
        ({'child 0': {'fitness': 0.9}}, 0)
    """

    def __init__(self, path: str | os.PathLike, identity: Mapping[str, Any] | None = None,
                 schemas: Mapping[str, Schema] | None = None) -> None:
        self.path, self.identity = Path(path), json.loads(json.dumps(dict(identity or {}), default=_json_default))
        self._records: dict[str, Any] = {}
        if self.path.is_file():
            try:
                saved = json.loads(self.path.read_text())
            except (OSError, ValueError):
                saved = None  # unreadable: start over (writes are atomic, so only a foreign file)
            if isinstance(saved, dict) and saved.get("identity") == self.identity:
                records = saved.get("records")
                self._records = {k: v for k, v in records.items() if _fits(k, v, schemas or {})} \
                    if isinstance(records, dict) else {}

    def __getitem__(self, key: str) -> Any:
        return self._records[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._records[key] = value
        write_json(self.path, {"identity": self.identity, "records": self._records})

    def __delitem__(self, key: str) -> None:
        del self._records[key]
        write_json(self.path, {"identity": self.identity, "records": self._records})

    def __iter__(self):
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)
