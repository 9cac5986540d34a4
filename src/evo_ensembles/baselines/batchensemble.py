"""BatchEnsemble (Wen, Tran & Ba 2020): M members sharing one weight, each with its own
rank-1 "fast weights", trained together on a tiled batch.

Every ``nn.Linear`` / ``nn.Conv2d`` of any model becomes a rank-1 layer holding the shared
weight ``W`` (a copy of the original), per-member input scales ``r_i`` (M × in), output
scales ``s_i`` (M × out) and per-member biases ``b_i`` (M × out)::

    y = ((x ∘ r_i) Wᵀ) ∘ s_i + b_i        (conv: r over input, s over output channels)

i.e. member ``i`` uses the weight ``W ∘ s_i r_iᵀ``. A layer takes a batch of ``M`` equal
consecutive groups of rows, group ``i`` for member ``i`` (edward2's layout); the wrapper
:class:`BatchEnsemble` tiles an input batch ``M`` times, so one forward gives every member's
logits as one (M, B, C) tensor, in training and in evaluation alike.

Conventions (as in uncertainty-baselines' ``cifar/batchensemble.py`` unless said):

- ``r`` and ``s`` start at N(1, 0.5²) (``init="normal"``, UB's ``random_sign_init=-0.5``) or
  at random signs ±1 (``init="random-sign"``, probability ½ each); biases start at the
  original bias (a layer without a bias gets none: a per-member bias before BatchNorm
  would not cancel, so adding one would change the model).
- BatchNorm (and every other layer) stays shared by the members; its batch statistics are
  taken over the whole tiled batch, as UB's BatchEnsemble ResNets do.
- Loss: mean cross-entropy over the tiled batch (UB's), i.e. the members' mean
  cross-entropies averaged — ``1/M`` of TreeNet's sum over members.
- Deviation: UB trains the fast weights at a lower learning rate and without L2; here one
  optimizer from the :class:`TrainConfig` updates every parameter alike.

Examples:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> be = to_batch_ensemble(net, 4, seed=0)
    >>> be(torch.randn(5, 1, 4, 4)).shape
    torch.Size([4, 5, 3])
    >>> type(be.net[1]).__name__, tuple(be.net[1].r.shape)
    ('BatchEnsembleLinear', (4, 16))
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_positive_int
from ..data import DataSplits
from ..errors import UserError
from ..models import ModelSource, build_model, make_model
from ..subnet import derive_seed
from ..train import TrainConfig, fit
from .common import BaselineResult, MultiOutputEnsemble, stage_dir, training_flops

INITS = ("normal", "random-sign")
_SEED_STREAM = 40  # derive_seed(cfg.seed, 40, 0): the fast weights' initialisation


def _fast_init_(t: torch.Tensor, init: str, generator: torch.Generator) -> None:
    with torch.no_grad():
        if init == "normal":
            t.copy_(torch.normal(1.0, 0.5, t.shape, generator=generator))
        else:
            t.copy_(torch.randint(0, 2, t.shape, generator=generator).to(t.dtype) * 2 - 1)


class _RankOne(nn.Module):
    """What the Linear and Conv2d versions share: fast weights, member biases, grouping."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    _feature_dim: int  # the dimension r and s scale: Linear -1, Conv2d 1 (channels)

    def _setup(self, layer: nn.Linear | nn.Conv2d, members: int, n_in: int, n_out: int,
               init: str, generator: torch.Generator) -> None:
        if isinstance(layer.weight, nn.parameter.UninitializedParameter):
            raise UserError("BatchEnsemble cannot convert a lazy layer before its first forward")
        self.members = members
        w = layer.weight.detach()
        self.weight = nn.Parameter(w.clone(), requires_grad=layer.weight.requires_grad)
        self.r = nn.Parameter(torch.empty(members, n_in, dtype=w.dtype, device=w.device))
        self.s = nn.Parameter(torch.empty(members, n_out, dtype=w.dtype, device=w.device))
        _fast_init_(self.r, init, generator)
        _fast_init_(self.s, init, generator)
        if layer.bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(layer.bias.detach().clone().unsqueeze(0).repeat(members, 1))

    def _groups(self, x: torch.Tensor) -> int:
        if x.shape[0] % self.members:
            raise UserError(
                f"{type(self).__name__} with {self.members} members got a batch of {x.shape[0]} "
                f"rows: it needs {self.members} equal groups (a multiple of {self.members}); "
                "BatchEnsemble.forward tiles an ordinary batch for you")
        return x.shape[0] // self.members

    def _per_member(self, x: torch.Tensor, v: torch.Tensor, *, add: bool = False) -> torch.Tensor:
        """``x`` (M·n, ...) with member ``i``'s rows times (or plus) ``v[i]`` along the
        feature dimension ``self._feature_dim`` (Linear: last, Conv2d: channels)."""
        n = self._groups(x)
        shape = [self.members, 1] + [1] * (x.dim() - 1)
        shape[self._feature_dim % x.dim() + 1] = v.shape[1]
        grouped = x.reshape(self.members, n, *x.shape[1:])
        v = v.reshape(shape)
        return (grouped + v if add else grouped * v).reshape(x.shape)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        y = self._per_member(y, self.s)
        return y if self.bias is None else self._per_member(y, self.bias, add=True)


class BatchEnsembleLinear(_RankOne):
    """Rank-1 BatchEnsemble version of an ``nn.Linear`` (input (M·n, ..., in) → (M·n, ..., out))."""

    _feature_dim = -1

    def __init__(self, layer: nn.Linear, members: int, *, init: str = "normal",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._setup(layer, members, layer.in_features, layer.out_features, init,
                    generator or torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._output(F.linear(self._per_member(x, self.r), self.weight))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, members={self.members}"


class BatchEnsembleConv2d(_RankOne):
    """Rank-1 BatchEnsemble version of an ``nn.Conv2d`` (same stride, padding, groups, …)."""

    _feature_dim = 1

    def __init__(self, layer: nn.Conv2d, members: int, *, init: str = "normal",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.groups, self.padding_mode = layer.groups, layer.padding_mode
        self._pad = layer._reversed_padding_repeated_twice
        self._setup(layer, members, layer.in_channels, layer.out_channels, init,
                    generator or torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._per_member(x, self.r)
        if self.padding_mode != "zeros":  # as nn.Conv2d._conv_forward does
            y = F.conv2d(F.pad(x, self._pad, mode=self.padding_mode), self.weight, None,
                         self.stride, 0, self.dilation, self.groups)
        else:
            y = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        return self._output(y)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, members={self.members}"


class BatchEnsemble(nn.Module):
    """A converted network (``.net``, whose layers take M equal groups of rows) behind a
    forward that tiles an ordinary batch: ``x`` (B, ...) → (M, B, C) logits, member ``i``'s
    logits in row ``i``. Build it with :func:`to_batch_ensemble`."""

    def __init__(self, net: nn.Module, members: int) -> None:
        super().__init__()
        self.net, self.members = net, members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.repeat(self.members, *([1] * (x.dim() - 1))))
        return out.reshape(self.members, x.shape[0], *out.shape[1:])


# Layers with weights that may stay shared by the members (as in the reference implementation's
# shared normalisation); any other layer with weights refuses (it would not be an ensemble member's own).
SHARED_OK = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.MultiheadAttention)


def to_batch_ensemble(model: nn.Module, members: int, *, init: str = "normal",
                      seed: int = 0) -> BatchEnsemble:
    """A BatchEnsemble of ``members`` built from a copy of ``model`` (left untouched): every
    ``nn.Linear`` and ``nn.Conv2d``, nested ones included, becomes its rank-1 version.

    ``init``: ``"normal"`` (fast weights ~ N(1, 0.5²)) or ``"random-sign"`` (±1); drawn from
    ``seed`` in module order, so the same seed gives the same fast weights. A layer
    registered in several places stays one shared layer. ``nn.MultiheadAttention``'s
    ``out_proj`` is left alone (attention reads its weight directly, never calls it).
    """
    check_positive_int(members, "members")
    check_choice(init, INITS, "BatchEnsemble init")
    shared = sorted({type(m).__name__ for m in model.modules()
                     if not isinstance(m, (nn.Linear, nn.Conv2d, *SHARED_OK))
                     and any(True for _ in m.parameters(recurse=False))})
    if shared:
        raise UserError(f"BatchEnsemble makes every nn.Linear and nn.Conv2d rank-1 per member; {type(model).__name__} "
                        f"also has {', '.join(shared)} layers with weights every member would share: not supported")
    net = copy.deepcopy(model)
    # Collect every (parent, name, layer) first and replace afterwards: replacing while
    # iterating named_modules() mutates the tree under the iterator.
    targets = [(parent, name, child)
               for _, parent in net.named_modules(remove_duplicate=False)
               if not isinstance(parent, nn.MultiheadAttention)
               for name, child in parent._modules.items()  # named_children() drops repeats
               if isinstance(child, (nn.Linear, nn.Conv2d))]
    generator = torch.Generator().manual_seed(int(seed))
    converted: dict[int, nn.Module] = {}
    for parent, name, child in targets:
        if id(child) not in converted:
            converted[id(child)] = (BatchEnsembleLinear(child, members, init=init, generator=generator)
                                    if isinstance(child, nn.Linear)
                                    else BatchEnsembleConv2d(child, members, init=init, generator=generator))
        setattr(parent, name, converted[id(child)])
    if isinstance(net, (nn.Linear, nn.Conv2d)):  # the model is itself one layer
        net = (BatchEnsembleLinear(net, members, init=init, generator=generator) if isinstance(net, nn.Linear)
               else BatchEnsembleConv2d(net, members, init=init, generator=generator))
    if not converted and not isinstance(net, _RankOne):
        raise UserError("BatchEnsemble found no nn.Linear or nn.Conv2d layer to convert")
    return BatchEnsemble(net, members)


def batch_ensemble_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The training objective: ``model`` tiles ``x`` M times (one copy per member), and the
    loss is the mean cross-entropy over the tiled batch (uncertainty-baselines')."""
    logits = model(x)
    m, b, c = logits.shape
    targets = y.repeat(m)
    flat = logits.reshape(m * b, c)
    return F.cross_entropy(flat, targets), flat, targets


def batch_ensemble(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, members: int = 4,
                   init: str = "normal", device="auto", progress=False, workdir=None) -> BaselineResult:
    """BatchEnsemble of ``members`` over ``model``, trained jointly for ``cfg.epochs`` on
    batches tiled ``members`` times.

    Every step runs all members on every example, so the training FLOPs (counted on the real
    tiled step) are ≈ ``members`` × a dense model's per example. FlopCounterMode counts
    matmuls and convolutions only, so the rank-1 elementwise scalings (O(in + out) per
    example and layer) are not counted, as elementwise work is not counted for the dense
    reference either.

    Examples:
        >>> from evo_ensembles import load_dataset, TrainConfig
        >>> data = load_dataset("fashion-mnist", subset=256)                  # doctest: +SKIP
        >>> res = batch_ensemble("lenet-5", data, TrainConfig(epochs=1))       # doctest: +SKIP
        >>> len(res.ensemble), res.epochs                                      # doctest: +SKIP
        (4, 1.0)
    """
    seed = derive_seed(cfg.seed, _SEED_STREAM, 0) % (2**31)
    base = make_model(model, data.input_shape, data.num_classes, seed=cfg.seed)
    model = to_batch_ensemble(base, members, init=init, seed=seed)
    # No val=: fit's validation accuracy expects (B, C) logits, this model returns (M, B, C).
    res = fit(model, data.train, cfg, augment=data.augment, device=device, progress=progress,
              desc="batchensemble", objective=batch_ensemble_loss,
              checkpoint_dir=stage_dir(workdir, "batchensemble"))
    # Counted on a copy: a training-mode step would move the trained BatchNorm statistics.
    flops = training_flops(copy.deepcopy(model), data, cfg.batch_size, cfg.epochs * len(data.train),
                           objective=batch_ensemble_loss)
    info = [{"member": i, "init": init, "seed": seed} for i in range(members)]
    return BaselineResult(MultiOutputEnsemble(model), float(cfg.epochs), res.seconds, flops,
                          members=info, history=res.history)



def rebuild(record: dict) -> MultiOutputEnsemble:
    """The untrained BatchEnsemble a stored record describes (see baselines/storage.py)."""
    opts = record.get("options") or {}
    model = build_model(record["model"], tuple(record["input_shape"]), int(record["num_classes"]))
    return MultiOutputEnsemble(to_batch_ensemble(model, opts["members"], init=opts.get("init", "normal")))


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "batchensemble", "title": "BatchEnsemble", "function": "batch_ensemble",
     "summary": "rank-1 members, batch tiled M times, the budget's epochs", "members": 4,
     "options": {"init": "init"}, "rebuild": "rebuild"},
]


__all__ = ["BatchEnsemble", "BatchEnsembleConv2d", "BatchEnsembleLinear", "batch_ensemble",
           "batch_ensemble_loss", "to_batch_ensemble"]
