"""Build any model of the library by name: :func:`build_model`, :func:`available_models`.

Names are case-insensitive (``_`` may stand for ``-``):

==========================  ==============================================================
``lenet-5``                 classic LeNet-5 (6/16/120/84)
``lenet-s|m|l``             wider LeNet-5s of the paper's ablations (SPEC §3)
``mlp``                     MLP, 3 hidden layers of 512
``mlp-<w>``                 MLP, 1 hidden layer of ``w`` (e.g. ``mlp-64``)
``mlp-<w>x<d>``             MLP, ``d`` hidden layers of ``w`` (e.g. ``mlp-256x2``)
``resnet-18``, ``resnet-34``  four-stage CIFAR-style ResNets (64-512 channels)
``resnet-<6n+2>``           He et al.'s CIFAR ResNets: ``resnet-8``, ``resnet-20``, …
``wrn-<depth>-<width>``     wide ResNets, e.g. ``wrn-28-10``, ``wrn-16-4``
``torchvision:<name>``      any torchvision classifier, random weights (never downloaded)
==========================  ==============================================================

Examples:
    >>> import torch
    >>> net = build_model("LeNet-S", (3, 32, 32), 10)
    >>> sum(p.numel() for p in net.parameters())
    253290
    >>> build_model("mlp-64", (1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_positive_int
from ..errors import UnknownNameError, UserError
from .lenet import LENET_WIDTHS, LeNet
from .mlp import DEFAULT_MLP_HIDDEN, MLP
from .resnet import IMAGENET_STYLE_STAGES, cifar_resnet, resnet18_cifar
from .torchvision_models import PREFIX as TORCHVISION_PREFIX
from .torchvision_models import build_torchvision_model
from .wrn import WideResNet

_FIXED = [*LENET_WIDTHS, "mlp", "resnet-8", "resnet-18", "resnet-20", "resnet-34"]
_PATTERNS = [
    "mlp-<width>",
    "mlp-<width>x<depth>",
    "resnet-<6n+2>",
    "wrn-<depth>-<width>",
    "torchvision:<name>",
]

_MLP_RE = re.compile(r"mlp-(\d+)(?:x(\d+))?")
_RESNET_RE = re.compile(r"resnet-?(\d+)")
_WRN_RE = re.compile(r"wrn-?(\d+)-(\d+)")
_LENET_RE = re.compile(r"lenet-?([5sml])")


def available_models() -> list[str]:
    """Fixed model names followed by the name patterns :func:`build_model` accepts.

    Examples:
        >>> "wrn-<depth>-<width>" in available_models()
        True
    """
    return [*_FIXED, *_PATTERNS]


def _unknown(name: str, hint: str = "") -> UnknownNameError:
    return UnknownNameError(
        f"unknown model {name!r}{hint}; available: {', '.join(available_models())}"
    )


def _check_args(
    input_shape: Sequence[int], num_classes: int, dropout: float
) -> tuple[tuple[int, int, int], int, float]:
    """Validate and normalise the shared arguments (UserError on anything odd)."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise UserError(f"input_shape must be (C, H, W), got {input_shape!r}") from None
    if (
        len(shape) != 3
        or not all(isinstance(s, int) or hasattr(s, "__index__") for s in shape)
        or any(isinstance(s, bool) or int(s) < 1 for s in shape)
    ):
        raise UserError(f"input_shape must be three positive ints (C, H, W), got {input_shape!r}")
    check_positive_int(num_classes, "num_classes")
    try:
        p = float(dropout)
    except (TypeError, ValueError):
        raise UserError(f"dropout must be a number in [0, 1), got {dropout!r}") from None
    if not (0.0 <= p < 1.0):  # also rejects NaN
        raise UserError(f"dropout must be in [0, 1), got {dropout!r}")
    c, h, w = (int(s) for s in shape)
    return (c, h, w), int(num_classes), p


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.0,
    seed: int | None = None,
) -> nn.Module:
    """Build a freshly initialised model (returns logits) by registry name.

    With ``seed`` the initial weights depend only on it (the global random state is
    forked, not consumed); without, they come from torch's global generator.

    Args:
        name: a name from :func:`available_models`, case-insensitive.
        input_shape: ``(C, H, W)`` of one input, e.g. ``(1, 28, 28)`` or ``(3, 32, 32)``.
        num_classes: number of output logits.
        dropout: ``p`` in ``[0, 1)``; > 0 adds ``nn.Dropout(p)`` after every hidden layer
            (LeNet, MLP) or between the two convs of every residual block (ResNet, WRN).
            Not supported for ``torchvision:*`` models.
        seed: makes the initialisation reproducible.

    Raises:
        UnknownNameError: unknown name (the message lists the available ones).
        UserError: bad ``input_shape``, ``num_classes``, ``dropout`` or model parameters.

    Examples:
        >>> build_model("wrn-16-4", (3, 32, 32), 100).fc.out_features
        100
    """
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return build_model(name, input_shape, num_classes, dropout=dropout)
    if not isinstance(name, str) or not name.strip():
        raise _unknown(str(name))
    shape, n_cls, p = _check_args(input_shape, num_classes, dropout)
    raw = name.strip()
    key = raw.lower()
    if key.startswith(TORCHVISION_PREFIX):
        # torchvision names contain underscores, so no "_" → "-" normalisation here.
        return build_torchvision_model(key[len(TORCHVISION_PREFIX) :], shape, n_cls, dropout=p)
    key = key.replace("_", "-")

    if m := _LENET_RE.fullmatch(key):
        return LeNet(shape, n_cls, widths=LENET_WIDTHS[f"lenet-{m.group(1)}"], dropout=p)
    if key == "mlp":
        return MLP(shape, n_cls, hidden=DEFAULT_MLP_HIDDEN, dropout=p)
    if m := _MLP_RE.fullmatch(key):
        width, depth = int(m.group(1)), int(m.group(2) or 1)
        if width < 1 or depth < 1:
            raise UserError(f"{raw!r}: MLP width and depth must be >= 1")
        return MLP(shape, n_cls, hidden=(width,) * depth, dropout=p)
    if m := _RESNET_RE.fullmatch(key):
        depth = int(m.group(1))
        if depth in IMAGENET_STYLE_STAGES:
            return resnet18_cifar(shape, n_cls, depth=depth, dropout=p)
        # 50/101/152 are 6n+2 too, but everyone means the bottleneck ImageNet nets by them.
        if depth >= 8 and (depth - 2) % 6 == 0 and depth not in (50, 101, 152):
            return cifar_resnet(depth, shape, n_cls, dropout=p)
        raise _unknown(
            raw,
            " (ResNet depths: 18, 34 or 6n+2 such as 8, 20, 32, 56, 110; "
            "bottleneck ResNets via torchvision:resnet50 etc.)",
        )
    if m := _WRN_RE.fullmatch(key):
        return WideResNet(shape, n_cls, depth=int(m.group(1)), width=int(m.group(2)), dropout=p)
    raise _unknown(raw)


def parameter_count(model: nn.Module) -> int:
    """Total number of parameters (trainable or not).

    Examples:
        >>> parameter_count(build_model("lenet-5", (3, 32, 32), 10))
        62006
    """
    return sum(math.prod(p.shape) for p in model.parameters())
