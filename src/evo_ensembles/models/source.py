"""Where a method gets its models: a registry name, the user's own module, or a factory.

Every peer method trains fresh models of one architecture. :func:`make_model` gives it one
from any of the three ways a user can name that architecture, seeded, so that members
differ exactly by their seeds:

- a name (``"lenet-5"``): built by :func:`~evo_ensembles.models.build_model`;
- an ``nn.Module``: a *template*: deep-copied (the user's module is never modified) and its
  copy's parameters drawn afresh from the seed by each layer's own ``reset_parameters``;
- a zero-argument callable returning an ``nn.Module``: called with torch's generator seeded.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> mine = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> a, b = (make_model(mine, (1, 4, 4), 3, seed=s) for s in (0, 1))
    >>> a is not mine, torch.equal(a[1].weight, b[1].weight), torch.equal(a[1].weight, mine[1].weight)
    (True, False, False)
    >>> torch.equal(make_model(mine, (1, 4, 4), 3, seed=0)[1].weight, a[1].weight)
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..errors import UserError

ModelSource = str | nn.Module | Callable[[], nn.Module]
"""A registry name, an ``nn.Module`` template, or a zero-argument callable building one."""

def model_label(model: ModelSource) -> str:
    """How results and records name the architecture: the registry name, else the class or
    callable's name."""
    if isinstance(model, str):
        return model
    if isinstance(model, nn.Module):
        return type(model).__name__
    return getattr(model, "__qualname__", None) or type(model).__name__


def reset_parameters_(model: nn.Module) -> nn.Module:
    """Draw every parameter of ``model`` afresh (in place) with its layers' ``reset_parameters``;
    a layer that owns parameters but has no ``reset_parameters`` is one :class:`UserError`."""
    for name, module in model.named_modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        elif any(True for _ in module.parameters(recurse=False)):
            raise UserError(f"{type(module).__name__} ({name or 'the model'}) has parameters but no "
                            "reset_parameters(), so its copies cannot be drawn afresh; pass a zero-argument "
                            "function that builds a fresh model instead")
    return model


def dropout_layers(model: nn.Module) -> list[nn.modules.dropout._DropoutNd]:
    """Every dropout layer of ``model`` (``nn.Dropout``, ``Dropout2d``, ``AlphaDropout``, …), in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def make_model(model: ModelSource, input_shape: tuple[int, int, int], num_classes: int, *, seed: int,
               dropout: float | None = None) -> nn.Module:
    """A fresh model of ``model``'s architecture whose initial weights depend only on ``seed``.

    ``dropout``: for a name, the rate of the dropout layers the registry adds (``None``: none);
    for a module or factory, the rate set on the model's *own* dropout layers (``None``: their
    own rates). The global random state is not consumed.
    """
    if isinstance(model, str):
        from .registry import build_model

        return build_model(model, input_shape, num_classes, dropout=dropout or 0.0, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if isinstance(model, nn.Module):
            net = reset_parameters_(copy.deepcopy(model))
        elif callable(model):
            net = model()
            if not isinstance(net, nn.Module):
                raise UserError(f"the model factory {model_label(model)} returned a {type(net).__name__}, "
                                "not an nn.Module")
        else:
            raise UserError(f"model: a registry name, an nn.Module or a zero-argument function returning one; "
                            f"got {type(model).__name__}")
    if dropout is not None:
        for layer in dropout_layers(net):
            layer.p = float(dropout)
    return net


__all__ = ["ModelSource", "dropout_layers", "make_model", "model_label", "reset_parameters_"]
