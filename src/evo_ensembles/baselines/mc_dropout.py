"""MC Dropout (Gal & Ghahramani 2016): one model trained with dropout; at test time M
stochastic passes are averaged.

Placement follows SPEC §3: after every hidden layer for LeNets and MLPs (p = 0.5), and
between the two convs of every residual block for ResNets/WRNs (p = 0.3). In the test-time
passes only the dropout modules are in training mode; BatchNorm keeps its running
statistics (eval mode). Each pass draws its dropout masks from its own seed, so the
ensemble's predictions are reproducible.

Example:
    >>> import torch
    >>> from evo_ensembles.models import build_model
    >>> ens = MCDropoutEnsemble(build_model("lenet-5", (1, 28, 28), 10, dropout=0.5), passes=3)
    >>> probs = ens.member_probs(torch.randn(2, 1, 28, 28))
    >>> probs.shape, bool((probs[0] != probs[1]).any())
    (torch.Size([3, 2, 10]), True)
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_positive_int
from ..data import DataSplits
from ..ensemble import BaseEnsemble
from ..errors import UserError
from ..models import build_model
from ..subnet import derive_seed
from ..train import TrainConfig, fit
from .common import BaselineResult, stage_dir, training_flops

RESIDUAL_PREFIXES = ("resnet", "wrn")


def default_dropout(model_name: str) -> float:
    """SPEC §3's dropout rate for a model family: 0.3 in residual blocks, 0.5 elsewhere."""
    return 0.3 if model_name.lower().startswith(RESIDUAL_PREFIXES) else 0.5


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Every dropout module of ``model`` (``nn.Dropout``, ``Dropout2d``, ``AlphaDropout``, …)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


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

    @torch.no_grad()
    def _own_member_probs(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        device = next(self.model.parameters()).device
        was = self.model.training
        self.model.eval()
        for m in dropout_modules(self.model):
            m.train()
        try:
            out = []
            for i in range(self.passes):
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(derive_seed(self.seed, 11, i))
                    out.append(torch.cat([torch.softmax(self.model(x[j:j + batch_size].to(device)).float(), 1).cpu()
                                          for j in range(0, len(x), batch_size)]))
        finally:
            self.model.train(was)
        return torch.stack(out)


def mc_dropout(model_name: str, data: DataSplits, cfg: TrainConfig, *, passes: int = 8,
               p: float | None = None, device="auto", progress=False, workdir=None) -> BaselineResult:
    """Train ``model_name`` with dropout ``p`` (default :func:`default_dropout`) for
    ``cfg.epochs``; the ensemble is ``passes`` MC-dropout passes.

    The training FLOPs are those of the dense model (dropout masks activations, not weights).
    """
    p = default_dropout(model_name) if p is None else p
    if not 0 < p < 1:
        raise UserError(f"MC Dropout needs a dropout rate in (0, 1), got {p}")
    model = build_model(model_name, data.input_shape, data.num_classes, dropout=p, seed=cfg.seed)
    res = fit(model, data.train, cfg, val=data.val, augment=data.augment, device=device, progress=progress,
              desc="mc-dropout", checkpoint_dir=stage_dir(workdir, "model"))
    flops = training_flops(model, data, cfg.batch_size, cfg.epochs * len(data.train))
    ens = MCDropoutEnsemble(model, passes=passes, seed=cfg.seed)
    return BaselineResult(ens, float(cfg.epochs), res.seconds, flops,
                          members=[{"pass": i, "dropout": p} for i in range(passes)], history=res.history)


__all__ = ["MCDropoutEnsemble", "default_dropout", "dropout_modules", "mc_dropout"]
