"""Keep a trained peer ensemble on disk and get it back: one safetensors file with its
weights and a record of how to rebuild the (untrained) structure they load into.

The record names the method, the model, the data shapes and the method's options; the
structure is rebuilt by the same library functions that trained it (``build_model``,
``to_batch_ensemble``, ``to_mimo``, ``treenet_model``, an MLP of the member's widths), so
nothing is unpickled.

Examples:
    >>> import torch
    >>> from evo_ensembles.ensemble import Ensemble
    >>> from evo_ensembles.models import build_model
    >>> ens = Ensemble([build_model("mlp-8", (1, 4, 4), 3, seed=s) for s in (0, 1)])
    >>> rec = {"method": "deep-ensemble", "model": "mlp-8", "input_shape": [1, 4, 4], "num_classes": 3,
    ...        "options": {"members": 2}, "members": [{}, {}], "seed": 0}
    >>> back = rebuild_peer(rec, ensemble_state(ens))
    >>> x = torch.randn(5, 1, 4, 4)
    >>> torch.equal(back.member_probs(x), ens.member_probs(x))
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from ..ensemble import BaseEnsemble, Ensemble
from ..errors import CheckpointError
from ..models import build_model
from ..train import load_state_into, load_tensors, read_meta, save_tensors

if TYPE_CHECKING:

    from .dropout_passes import MCDropoutEnsemble

FORMAT = "evo_ensembles.peer/1"


def ensemble_state(ens: BaseEnsemble) -> dict[str, torch.Tensor]:
    """Every tensor of a peer ensemble, keyed ``member.<i>.<name>`` (separate models) or
    ``module.<name>`` (one network: TreeNet, BatchEnsemble, MIMO, MC Dropout)."""
    if isinstance(ens, Ensemble):
        return {f"member.{i}.{k}": v for i, m in enumerate(ens.members) for k, v in m.state_dict().items()}
    module = getattr(ens, "module", None) or getattr(ens, "model", None)
    if module is None:
        raise TypeError(f"do not know how to store a {type(ens).__name__}")
    return {f"module.{k}": v for k, v in module.state_dict().items()}


def save_peer(path: str | Path, ens: BaseEnsemble, record: Mapping[str, Any]) -> None:
    """Write ``ens``'s weights and ``record`` (see :func:`rebuild_peer`) to ``path`` atomically."""
    temperature = None if ens.temperature is None else ens.temperature.to_dict()
    save_tensors(path, {k: v.detach().cpu().contiguous() for k, v in ensemble_state(ens).items()},
                 {"format": FORMAT, **record, "temperature": temperature})


def _skeleton(record: Mapping[str, Any]) -> BaseEnsemble:
    """The untrained ensemble: the method's own ``rebuild`` where it declares one, else one
    model per stored member (with the member's dropout rate)."""
    from ..methods.registry import method

    spec = method(record["method"])
    if spec.rebuild is not None:
        ens: BaseEnsemble = spec.load(spec.rebuild)(dict(record))
        return ens
    name, shape, classes = record["model"], tuple(record["input_shape"]), int(record["num_classes"])
    return Ensemble([build_model(name, shape, classes, dropout=float(info.get("dropout", 0.0) or 0.0))
                     for info in record.get("members") or []])


def rebuild_peer(record: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> BaseEnsemble:
    """The peer ensemble ``record`` describes, with ``state``'s weights."""
    ens = _skeleton(record)
    if isinstance(ens, Ensemble):
        for i, m in enumerate(ens.members):
            prefix = f"member.{i}."
            load_state_into(m, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, f"member {i}")
    else:
        module = getattr(ens, "module", None) or cast("MCDropoutEnsemble", ens).model  # the other kind
        load_state_into(module, {k[7:]: v for k, v in state.items() if k.startswith("module.")}, "module")
    return ens


def load_peer(path: str | Path) -> tuple[BaseEnsemble, dict[str, Any]]:
    """A peer ensemble saved by :func:`save_peer`, and its record."""
    record = read_meta(path)
    if record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a peer ensemble written by this toolkit")
    ens = rebuild_peer(record, load_tensors(path))
    if record.get("temperature") is not None:  # fit on validation by the run that saved it
        from ..calibration import TemperatureFit

        ens.temperature = TemperatureFit.from_dict(record["temperature"], source=str(path))
    return ens, record


__all__ = ["ensemble_state", "load_peer", "rebuild_peer", "save_peer"]
