"""MotherNets (Wasay et al., MLSys 2020) for MLPs: train one small "mothernet", hatch every
member from it by function-preserving widening, then train the members briefly.

1. The mothernet is the largest network contained in every member: per hidden layer the
   narrowest member's width (:func:`mothernet_hidden`), or narrower with ``mother_width``
   (the paper's 16-unit mothernet grown into 32-unit members). It trains first.
2. Hatching widens it to each member's widths with Net2Net's WiderNet (Chen et al. 2016,
   §3.1; :func:`widen_mlp`): every new unit copies a randomly chosen existing unit's
   incoming weights and bias, and the outgoing weights of a unit copied ``k`` times are
   divided by ``k + 1``, so the member computes exactly the mothernet's function.
3. A little Gaussian noise (:func:`add_noise`, relative to each tensor's std) breaks the
   symmetry between a unit and its copies (which would otherwise receive identical
   gradients forever) and between members hatched at equal widths; then every member trains.

Budget: the mothernet trains ``mother_fraction`` of ``cfg.epochs`` (at least 1), each member
the rest (at least 1), so the result reports ``mother epochs + M × member epochs``.

Examples:
    >>> import torch
    >>> from evo_ensembles.models import MLP
    >>> mother = MLP((1, 4, 4), 3, hidden=(8,))
    >>> child = widen_mlp(mother, (13,), seed=0)
    >>> x = torch.randn(5, 1, 4, 4)
    >>> child.hidden, torch.allclose(child(x), mother(x), atol=1e-5)
    ((13,), True)
    >>> from evo_ensembles import load_dataset, TrainConfig
    >>> data = load_dataset("fashion-mnist", subset=512)                         # doctest: +SKIP
    >>> res = mothernets("mlp-64", data, TrainConfig(epochs=4), members=3)      # doctest: +SKIP
    >>> res.epochs                                                              # doctest: +SKIP
    8.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..checks import check_fraction, check_nonneg, check_positive_int
from ..data import DataSplits
from ..ensemble import Ensemble
from ..errors import UserError
from ..models import MLP, ModelSource, make_model
from ..subnet import derive_seed
from ..train import TrainConfig
from .common import BaselineResult, fit_stage, training_flops

_STREAM = 0x307  # derive_seed stream of MotherNets' initialisation, hatching and noise


def mothernet_hidden(member_hidden: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The widest hidden widths contained in every member: the per-layer minimum.

    Examples:
        >>> mothernet_hidden([(32, 64), (48, 16), (64, 64)])
        (32, 16)
    """
    widths = [tuple(int(w) for w in h) for h in member_hidden]
    if not widths:
        raise UserError("MotherNets needs at least one member's hidden widths")
    if len({len(h) for h in widths}) != 1:
        raise UserError(f"MotherNets members must have the same depth, got hidden widths {widths}")
    if any(w < 1 for h in widths for w in h):
        raise UserError(f"hidden widths must be positive, got {widths}")
    return tuple(min(col) for col in zip(*widths, strict=True))


def _linears(model: MLP) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


def _dropout(model: MLP) -> float:
    return next((m.p for m in model if isinstance(m, nn.Dropout)), 0.0)


def _new_mlp(like: MLP, hidden: Sequence[int], seed: int) -> MLP:
    """An MLP shaped like ``like`` but with ``hidden`` widths, initialised from ``seed``
    without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(like.input_shape, like.num_classes, hidden=hidden, dropout=_dropout(like))


@torch.no_grad()
def widen_mlp(mother: MLP, hidden: Sequence[int], *, seed: int) -> MLP:
    """A wider copy of ``mother`` with hidden widths ``hidden`` computing the same function
    (Net2Net WiderNet). Replicated units are drawn uniformly with a generator seeded by
    ``seed``; ``mother`` is not changed.

    Examples:
        >>> from evo_ensembles.models import MLP
        >>> widen_mlp(MLP((1, 2, 2), 2, hidden=(3, 3)), (5, 4), seed=1).hidden
        (5, 4)
    """
    hidden = tuple(int(w) for w in hidden)
    if len(hidden) != len(mother.hidden):
        raise UserError(f"cannot widen hidden widths {mother.hidden} to {hidden}: depths differ")
    if any(new < old for new, old in zip(hidden, mother.hidden, strict=True)):
        raise UserError(f"cannot widen hidden widths {mother.hidden} to narrower {hidden}")
    g = torch.Generator().manual_seed(int(seed))
    # unit j of hidden layer l copies mother unit maps[l][j]; the first `old` units are themselves
    maps = [torch.cat([torch.arange(old), torch.randint(0, old, (new - old,), generator=g)])
            for old, new in zip(mother.hidden, hidden, strict=True)]
    child = _new_mlp(mother, hidden, seed)
    old_layers, new_layers = _linears(mother), _linears(child)
    device = old_layers[0].weight.device
    child.to(device)
    for k, (old, new) in enumerate(zip(old_layers, new_layers, strict=True)):
        w: torch.Tensor = old.weight
        b: torch.Tensor = old.bias
        if k < len(maps):  # outputs: copy the chosen units' incoming weights and biases
            out_map = maps[k].to(device)
            w, b = w[out_map], b[out_map]
        if k > 0:  # inputs: a unit now feeding through `count` copies sends 1/count of it
            in_map = maps[k - 1].to(device)
            count = torch.bincount(in_map, minlength=old.in_features).to(w.dtype)
            w = w[:, in_map] / count[in_map]
        new.weight.copy_(w)
        new.bias.copy_(b)
    return child


@torch.no_grad()
def add_noise(model: nn.Module, scale: float, *, seed: int) -> nn.Module:
    """Add Gaussian noise of std ``scale × std(tensor)`` to every parameter tensor of
    ``model`` in place (a constant tensor gets none); seeded, global state untouched."""
    check_nonneg(scale, "noise scale")
    g = torch.Generator().manual_seed(int(seed))
    for p in model.parameters():
        if p.numel() < 2:
            continue
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        p.add_(noise.to(p.device) * (scale * p.std()))
    return model


def _member_widths(base: MLP, members: int, member_hidden) -> list[tuple[int, ...]]:
    if member_hidden is None:
        return [tuple(base.hidden)] * members
    widths = [tuple(int(w) for w in h) for h in member_hidden]
    if len(widths) != members:
        raise UserError(f"member_hidden lists {len(widths)} members' widths but members={members}")
    return widths


def _mother_widths(contained: tuple[int, ...], mother_width) -> tuple[int, ...]:
    if mother_width is None:
        return contained
    widths = ((int(mother_width),) * len(contained) if isinstance(mother_width, int)
              else tuple(int(w) for w in mother_width))
    if len(widths) != len(contained) or any(w < 1 or w > c for w, c in zip(widths, contained, strict=False)):
        raise UserError(f"mother_width {mother_width} must give positive widths no wider than the "
                        f"members' common widths {contained}")
    return widths


def mothernets(
    model: ModelSource,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    members: int = 3,
    member_hidden: Sequence[Sequence[int]] | None = None,
    mother_width: int | Sequence[int] | None = None,
    mother_fraction: float = 0.5,
    noise: float = 0.01,
    device: str | torch.device = "auto",
    progress: bool = False,
    workdir: str | Path | None = None,
) -> BaselineResult:
    """Train a mothernet, hatch ``members`` MLPs from it, train each; see the module docstring.

    ``model``: an MLP (``mlp-<w>``, ``mlp-<w>x<d>``, or the library's :class:`~evo_ensembles.models.MLP`
    of your own widths; MotherNets widens MLPs, so any other model is refused); its hidden widths are every
    member's unless ``member_hidden`` gives one tuple per member (all of one depth).
    ``mother_width``: narrower mothernet widths (int: every layer), at most the members'
    per-layer minimum. ``noise``: the hatching noise's std relative to each tensor's std.
    """
    base = make_model(model, data.input_shape, data.num_classes, seed=0)  # only its widths
    if not isinstance(base, MLP):
        raise UserError(f"MotherNets here widens MLPs; use mlp-<w>, mlp-<w>x<d> or an evo_ensembles.models.MLP, "
                        f"got {model if isinstance(model, str) else type(base).__name__!r}")
    check_positive_int(members, "MotherNets members")
    check_fraction(mother_fraction, "mother_fraction")
    widths = _member_widths(base, members, member_hidden)
    mother_hidden = _mother_widths(mothernet_hidden(widths), mother_width)
    mother_epochs = max(1, int(mother_fraction * cfg.epochs + 0.5))
    member_epochs = max(1, cfg.epochs - mother_epochs)

    mother = _new_mlp(base, mother_hidden, derive_seed(cfg.seed, _STREAM, 0))
    mcfg = replace(cfg, epochs=mother_epochs)
    res = fit_stage(mother, data.train, mcfg, augment=data.augment, device=device, progress=progress,
                    desc="mothernet", workdir=workdir, stage="mother")
    flops = training_flops(mother, data, cfg.batch_size, mother_epochs * len(data.train))
    seconds, history = res.seconds, [{"stage": "mother", **h} for h in res.history]

    ens = Ensemble()
    for i, hidden in enumerate(widths):
        hatch_seed = derive_seed(cfg.seed, _STREAM, 1, i)
        noise_seed = derive_seed(cfg.seed, _STREAM, 2, i)
        train_seed = derive_seed(cfg.seed, _STREAM, 3, i) % (2**31)
        member = add_noise(widen_mlp(mother, hidden, seed=hatch_seed), noise, seed=noise_seed)
        res = fit_stage(member, data.train, replace(cfg, epochs=member_epochs, seed=train_seed),
                        augment=data.augment, device=device, progress=progress,
                        desc=f"member {i + 1}/{members}", workdir=workdir, stage=f"member{i}")
        flops += training_flops(member, data, cfg.batch_size, member_epochs * len(data.train))
        seconds += res.seconds
        history += [{"stage": f"member{i}", **h} for h in res.history]
        ens.add(member, {"hidden": list(hidden), "mother_hidden": list(mother_hidden),
                         "hatch_seed": hatch_seed, "noise_seed": noise_seed, "seed": train_seed,
                         "noise": noise, "mother_epochs": mother_epochs, "epochs": member_epochs})
    return BaselineResult(ens, epochs=float(mother_epochs + members * member_epochs), seconds=seconds,
                          training_flops=flops, members=list(ens.descriptors), history=history)



def check_config(cfg) -> None:
    """MotherNets widens MLPs only."""
    if not cfg.model.lower().startswith("mlp"):
        raise UserError(f"mothernets widens MLPs; use --model mlp-<w> (got {cfg.model})")


def rebuild(record: dict) -> Ensemble:
    """The untrained members a stored record describes: MLPs of each member's own widths."""
    shape, classes = tuple(record["input_shape"]), int(record["num_classes"])
    return Ensemble([MLP(shape, classes, hidden=tuple(info["hidden"])) for info in record.get("members") or []])


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "mothernets", "title": "MotherNets", "function": "mothernets",
     "summary": "an MLP mothernet, hatched into M wider members, trained further", "members": 3,
     "options": {"mother_width": "mother_width"}, "check": "check_config", "rebuild": "rebuild"},
]


__all__ = ["add_noise", "mothernet_hidden", "mothernets", "widen_mlp"]
