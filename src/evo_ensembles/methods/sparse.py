"""Sparse Subnetwork Ensembles — "Prune and Tune" (SPEC §3).

Copy the trained parent, prune each copy to a random (or neurally partitioned) subnetwork,
keep the pruned weights exactly zero, and tune each child briefly; the children are the
ensemble.

Example (your own trained model and data):
    >>> import torch, torch.nn as nn
    >>> from evo_ensembles import ArrayData, TrainConfig, make_child_specs, prune_and_tune
    >>> data = ArrayData(torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,)))
    >>> parent = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> specs = make_child_specs(4, density=0.5, partition=True, seed=0)
    >>> ens = prune_and_tune(parent, specs, data, TrainConfig(epochs=1, batch_size=16), progress=False)
    >>> len(ens), ens.member_probs(data.x).shape
    (4, torch.Size([4, 64, 3]))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..data import ArrayData, Augment
from ..data.loaders import TrainData, steps_per_epoch
from ..ensemble import Ensemble
from ..errors import UserError
from ..subnet import ChildSpec, Mask, apply_mask, derive_seed, eligible_parameters
from ..train import Callback, TrainConfig, TrainResult, fit


class KeepPruned(Callback):
    """Holds pruned weights at exactly zero: re-applies the mask after every optimizer step.

    Re-applying (rather than only masking gradients) is exact under any optimizer —
    momentum, Adam moments and weight decay cannot move a zero that is reset each step.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], mask: Mask) -> None:
        self.params = dict(params)
        self.pruned = {n: ~m.to(self.params[n].device) for n, m in mask.items()}

    @property
    def mask(self) -> Mask:
        """The weights kept (the complement of the pruned ones)."""
        return {n: ~p for n, p in self.pruned.items()}

    @torch.no_grad()
    def _zero(self) -> None:
        for n, pruned in self.pruned.items():
            self.params[n].masked_fill_(pruned, 0.0)

    def on_train_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._zero()

    def on_after_step(self, model: nn.Module, step: int) -> None:
        self._zero()


def prune_child(
    parent: nn.Module, spec: ChildSpec, *, eligible: Mapping | None = None
) -> tuple[nn.Module, Mask]:
    """A pruned copy of ``parent`` (the parent is untouched) and the child's mask.

    ``eligible`` holds keyword arguments for :func:`eligible_parameters` (which tensors may
    be pruned; Linear/Conv weights by default). Tensors outside the spec's pruning scope
    (``dense_layers``) are copied unpruned; tuning then trains them like the biases.
    """
    child = copy.deepcopy(parent)
    params = eligible_parameters(child, **(eligible or {}))
    mask = spec.mask(params)
    apply_mask(params, mask)
    return child, mask


def tune_child(
    child: nn.Module,
    mask: Mask,
    train: ArrayData,
    cfg: TrainConfig,
    *,
    eligible: Mapping | None = None,
    **fit_kwargs,
) -> TrainResult:
    """Tune a pruned child in place through the one training loop, pruned weights frozen at 0."""
    params = eligible_parameters(child, **(eligible or {}))
    callbacks = [KeepPruned(params, mask), *fit_kwargs.pop("callbacks", ())]
    return fit(child, train, cfg, callbacks=callbacks, **fit_kwargs)



# (parent, spec, cfg, steps, *, eligible) -> (child, its training callback). The callback is a
# Callback with a ``mask`` property (KeepPruned, methods.stochastic's StochasticMasks, ...); typing
# has no intersection type for that, so it is Any here.
ChildFactory = Callable[..., tuple[nn.Module, Any]]


@dataclass
class TunedChild:
    """One finished child of :func:`prune_and_tune` (what ``on_child`` receives)."""

    index: int
    spec: ChildSpec
    model: nn.Module
    mask: Mask
    result: TrainResult | None  # None: restored from the store, not tuned now

    @property
    def seconds(self) -> float:
        """Tuning seconds spent now (0 for a child restored from the store)."""
        return 0.0 if self.result is None else self.result.seconds


class ChildStore(Protocol):
    """Where :func:`prune_and_tune` keeps finished children and interrupted tunings.

    A run directory, a cache keyed by the parent's fingerprint, a remote bucket: anything with
    these three methods. ``load`` fills ``child`` (already pruned from the parent) in place
    and says whether it could.
    """

    def load(self, index: int, spec: ChildSpec, child: nn.Module) -> bool: ...

    def save(self, index: int, spec: ChildSpec, child: nn.Module, result: TrainResult) -> None: ...

    def resume_dir(self, index: int) -> Path | None: ...


def pruned_child(
    parent: nn.Module,
    spec: ChildSpec,
    cfg: TrainConfig,
    steps: int,
    *,
    eligible: Mapping | None = None,
) -> tuple[nn.Module, KeepPruned]:
    """The default child factory: a one-shot pruned copy and its :class:`KeepPruned`."""
    child, mask = prune_child(parent, spec, eligible=eligible)
    return child, KeepPruned(eligible_parameters(child, **(eligible or {})), mask)


def child_train_config(cfg: TrainConfig, base_seed: int, index: int) -> TrainConfig:
    """Each child sees its own data order: its tuning seed is derived from (seed, index)."""
    return replace(cfg, seed=derive_seed(base_seed, 2, index) % (2**31))


def bagged(train: TrainData, fraction: float, seed: int, index: int) -> ArrayData:
    """Child ``index``'s own random ``fraction`` of ``train`` (without replacement)."""
    from ..checks import check_fraction

    check_fraction(fraction, "bag fraction")
    if not isinstance(train, ArrayData):
        raise UserError("bagged children need the training data as ArrayData (in memory)")
    g = torch.Generator().manual_seed(derive_seed(seed, 6, index) % (2**63))
    return train.subset(torch.randperm(len(train), generator=g)[: max(1, round(fraction * len(train)))])


def prune_and_tune(
    parent: nn.Module,
    specs: Sequence[ChildSpec],
    train: TrainData,
    cfg: TrainConfig,
    *,
    val: TrainData | None = None,
    augment: Augment | None = None,
    device: str | torch.device = "auto",
    eligible: Mapping | None = None,
    include_parent: bool = False,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    store: ChildStore | None = None,
    on_child: Callable[[TunedChild], None] | None = None,
    ensemble: Ensemble | None = None,
    child_factory: ChildFactory | None = None,
    first_index: int | None = None,
    bag_fraction: float | None = None,
) -> Ensemble:
    """Build (or grow) a Sparse Subnetwork Ensemble from a trained ``parent``.

    Each spec gives one child: pruned by its mask, then tuned with ``cfg`` (seed derived per
    child from its index). ``train`` is ArrayData, a ``Dataset`` or a ``DataLoader`` (see
    :func:`~evo_ensembles.train.fit`). Pass an existing ``ensemble`` to add children to it (growth on
    demand). ``first_index`` is the index of ``specs[0]`` in the whole ensemble (default:
    ``len(ensemble)``), so children tuned separately — one per call, process or machine —
    are the same children a single call would make. With ``checkpoint_dir`` an interrupted
    child's tuning resumes where it stopped; a ``store`` (see :class:`ChildStore`) also keeps
    finished children, so a rerun reuses them. ``on_child`` receives each
    :class:`TunedChild` as it is finished. ``bag_fraction``: each child tunes on its own
    random fraction of ``train`` (ArrayData; drawn without replacement, seeded by the child's
    index), the "NP + bagging" children of SPEC §5.
    """
    ens = (
        ensemble if ensemble is not None else Ensemble(parent=parent, include_parent=include_parent)
    )
    start = len(ens) if first_index is None else int(first_index)
    factory = child_factory or pruned_child
    for i, spec in enumerate(specs):
        index = start + i
        child_train = train if bag_fraction is None else bagged(train, bag_fraction, cfg.seed, index)
        steps = steps_per_epoch(child_train, cfg.batch_size)
        child, keeper = factory(parent, spec, cfg, steps, eligible=eligible)
        result = None
        if store is None or not store.load(index, spec, child):
            ckpt = None
            if getattr(
                keeper, "resumable", True
            ):  # a callback whose state is not checkpointed cannot resume
                if store is not None:
                    ckpt = store.resume_dir(index)
                elif checkpoint_dir is not None:
                    ckpt = Path(checkpoint_dir) / f"child_{index}"
            result = fit(
                child,
                child_train,
                child_train_config(cfg, cfg.seed, index),
                callbacks=[keeper],
                val=val,
                augment=augment,
                device=device,
                progress=progress,
                checkpoint_dir=ckpt,
                desc=f"child {index + 1}/{start + len(specs)}",
            )
            if store is not None:
                store.save(index, spec, child, result)
        ens.add(child, spec.to_dict())
        if on_child is not None:
            on_child(TunedChild(index, spec, child, keeper.mask, result))
    return ens


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "sparse", "title": "Sparse Subnetwork Ensemble", "function": "prune_and_tune",
     "summary": "children pruned to random (or partitioned) subnetworks of the parent, tuned briefly",
     "reader": "subnet"},
]
