"""MC Dropout (Gal & Ghahramani 2016): one model trained with dropout; at test time M
stochastic passes are averaged.

Placement follows SPEC §3: after every hidden layer for LeNets and MLPs (p = 0.5), and
between the two convs of every residual block for ResNets/WRNs (p = 0.3). In the test-time
passes only the dropout modules are in training mode; BatchNorm keeps its running
statistics (eval mode). Each pass draws its dropout masks from its own seed, so the
ensemble's predictions are reproducible.

Examples:
    >>> import torch
    >>> from evo_ensembles.models import build_model
    >>> ens = MCDropoutEnsemble(build_model("lenet-5", (1, 28, 28), 10, dropout=0.5), passes=3)
    >>> probs = ens.member_probs(torch.randn(2, 1, 28, 28))
    >>> probs.shape, bool((probs[0] != probs[1]).any())
    (torch.Size([3, 2, 10]), True)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..checks import check_open_fraction, check_positive_int
from ..data import DataSplits
from ..ensemble import BaseEnsemble
from ..errors import UserError
from ..models import ModelSource, build_model, make_model
from ..models.source import dropout_layers
from ..subnet import derive_seed
from ..train import TrainConfig, fit
from .common import BaselineResult, stage_dir, training_flops

RESIDUAL_PREFIXES = ("resnet", "wrn")


def default_dropout(model_name: str) -> float:
    """SPEC §3's dropout rate for a model family: 0.3 in residual blocks, 0.5 elsewhere."""
    return 0.3 if model_name.lower().startswith(RESIDUAL_PREFIXES) else 0.5


dropout_modules = dropout_layers  # the name this module has always exported


class MCDropoutPass(nn.Module):
    """One MC Dropout pass: dropout stays on (in eval mode too) and every forward runs with
    the global RNG forked and seeded with ``seed``: the same input gives the same output
    each call, and gradients flow.

    Examples:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
        >>> x = torch.randn(2, 4)
        >>> torch.equal(MCDropoutPass(net, 1)(x), MCDropoutPass(net, 1)(x)), torch.equal(
        ...     MCDropoutPass(net, 1)(x), MCDropoutPass(net, 2)(x))
        (True, False)
    """

    def __init__(self, model: nn.Module, seed: int) -> None:
        super().__init__()
        self.model, self.seed, self._seeded = model, int(seed), False
        self.eval()  # the rest of the model as in evaluation; dropout on

    def train(self, mode: bool = True) -> MCDropoutPass:
        super().train(mode)
        for m in dropout_modules(self.model):
            m.train()
        return self

    @contextmanager
    def seeded(self) -> Iterator[None]:
        """One seeding for every forward inside the block (how MCDropoutEnsemble runs a pass
        over several batches)."""
        device = next(self.model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            self._seeded = True
            try:
                yield
            finally:
                self._seeded = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._seeded:
            return self.model(x)
        with self.seeded():
            return self.model(x)


class MCDropoutEnsemble(BaseEnsemble):
    """``passes`` stochastic forward passes of one dropout model as the members."""

    def __init__(self, model: nn.Module, *, passes: int = 8, seed: int = 0, combine: str = "mean") -> None:
        super().__init__(combine=combine)
        check_positive_int(passes, "passes")
        if not dropout_modules(model):
            raise UserError("MC Dropout needs a model with dropout modules (build it with dropout > 0)")
        self.model, self.passes, self.seed = model, passes, seed

    def __len__(self) -> int:
        return self.passes

    def pass_seed(self, i: int) -> int:
        """The seed of pass ``i``'s dropout masks."""
        return derive_seed(self.seed, 11, i)

    def pass_module(self, i: int) -> MCDropoutPass:
        """Pass ``i`` as a module of its own (the same masks for the same input, gradients flow)."""
        return MCDropoutPass(self.model, self.pass_seed(i))

    @torch.no_grad()
    def _own_member_logits(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        device = next(self.model.parameters()).device
        was = self.model.training
        self.model.eval()
        for m in dropout_modules(self.model):
            m.train()
        try:
            out = []
            for i in range(self.passes):
                with self.pass_module(i).seeded():
                    out.append(torch.cat([self.model(x[j:j + batch_size].to(device)).float().cpu()
                                          for j in range(0, len(x), batch_size)]))
        finally:
            self.model.train(was)
        return torch.stack(out)


def mc_dropout(model: ModelSource, data: DataSplits, cfg: TrainConfig, *, passes: int = 8,
               p: float | None = None, device="auto", progress=False, workdir=None) -> BaselineResult:
    """Train ``model`` with dropout ``p`` for ``cfg.epochs``; the ensemble is ``passes``
    MC-dropout passes.

    A registry name gets dropout layers of rate ``p`` (default :func:`default_dropout`). Your own
    ``nn.Module`` (or a function building one) uses its *own* dropout layers, at their rates
    unless ``p`` is given, and must have some: none are added to a model the library does not know.
    The training FLOPs are those of the dense model (dropout masks activations, not weights).
    """
    if isinstance(model, str):
        p = default_dropout(model) if p is None else p
    if p is not None:
        check_open_fraction(p, "MC Dropout's dropout rate")
    label = model if isinstance(model, str) else None
    model = make_model(model, data.input_shape, data.num_classes, dropout=p, seed=cfg.seed)
    if label is None and not dropout_layers(model):
        raise UserError(f"MC Dropout uses the model's own dropout layers, and {type(model).__name__} has none "
                        "(add nn.Dropout layers, or use a registry name, which gets them)")
    if p is None:
        p = dropout_layers(model)[0].p if len({d.p for d in dropout_layers(model)}) == 1 else None
    res = fit(model, data.train, cfg, val=data.val, augment=data.augment, device=device, progress=progress,
              desc="mc-dropout", checkpoint_dir=stage_dir(workdir, "model"))
    flops = training_flops(model, data, cfg.batch_size, cfg.epochs * len(data.train))
    ens = MCDropoutEnsemble(model, passes=passes, seed=cfg.seed)
    return BaselineResult(ens, float(cfg.epochs), res.seconds, flops,
                          members=[{"pass": i, "dropout": p} for i in range(passes)], history=res.history)



def rebuild(record: dict) -> MCDropoutEnsemble:
    """The untrained MC-dropout ensemble a stored record describes (see baselines/storage.py)."""
    opts = record.get("options") or {}
    p = opts.get("p", default_dropout(record["model"]))
    model = build_model(record["model"], tuple(record["input_shape"]), int(record["num_classes"]), dropout=p)
    return MCDropoutEnsemble(model, passes=opts.get("passes", 8), seed=int(record.get("seed", 0)))


# The methods of this module (read by evo_ensembles.methods.registry without importing it).
METHODS = [
    {"name": "mc-dropout", "title": "MC Dropout", "function": "mc_dropout",
     "summary": "one model with dropout, M stochastic passes at test time", "members": 8, "size": "passes",
     "options": {"p": "dropout"}, "rebuild": "rebuild"},
]


__all__ = ["MCDropoutEnsemble", "MCDropoutPass", "default_dropout", "dropout_modules", "mc_dropout"]
