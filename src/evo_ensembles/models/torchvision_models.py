"""Any torchvision classification model as ``torchvision:<name>`` (e.g. ``torchvision:densenet121``).

Models are built with ``torchvision.models.get_model(name, weights=None,
num_classes=num_classes)``: **weights are never downloaded**. To start from pretrained
weights, build the model here and load your own state dict, e.g.::

    net = build_model("torchvision:resnet18", (3, 32, 32), 10)
    state = torch.load("my_resnet18.pth", map_location="cpu")
    net.load_state_dict(state)

(A pretrained 1000-class head will not fit a ``num_classes != 1000`` model; drop the
``fc``/``classifier`` entries and load with ``strict=False``.)

These models keep torchvision's ImageNet layout (often a stride-2 stem and a max-pool), so
on 32×32 inputs they work but are not tuned for it; the CIFAR-style ``resnet-*``/``wrn-*``
registry models are. Inputs must have 3 channels, and the model is checked with one
dummy forward at build time so a too-small input fails here with a clear message.

Example:
    >>> import torch
    >>> net = build_torchvision_model("resnet18", (3, 32, 32), 10)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from ..errors import UnknownNameError, UserError

PREFIX = "torchvision:"

# These two return (logits, aux_logits) tuples in training mode by default; the library
# expects plain logits everywhere, so their auxiliary heads are switched off.
_NO_AUX = {"googlenet", "inception_v3"}


def torchvision_classification_models() -> list[str]:
    """Names of torchvision's image-classification models (not detection/segmentation/video)."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_torchvision_model(
    name: str, input_shape: Sequence[int], num_classes: int, *, dropout: float = 0.0
) -> nn.Module:
    """Build ``torchvision.models.<name>`` with random weights and ``num_classes`` outputs.

    Raises:
        UnknownNameError: ``name`` is not a torchvision classification model.
        UserError: ``dropout > 0`` (not supported: torchvision models fix their own
            dropout), a non-3-channel input, or an input the model cannot process.

    Example:
        >>> build_torchvision_model("resnet18", (3, 32, 32), 10).fc.out_features
        10
    """
    name = name.strip().lower()
    valid = torchvision_classification_models()
    if name not in valid:
        examples = ", ".join(
            n
            for n in (
                "resnet18",
                "resnet50",
                "densenet121",
                "vgg11_bn",
                "mobilenet_v2",
                "wide_resnet50_2",
            )
            if n in valid
        )
        raise UnknownNameError(
            f"unknown torchvision model {name!r}; valid names include {examples} "
            f"({len(valid)} in all: torchvision.models.list_models(module=torchvision.models))"
        )
    if dropout > 0:
        raise UserError(
            f"dropout is not supported for torchvision models (got dropout={dropout}); "
            "use lenet-*, mlp*, resnet-* or wrn-* for dropout models"
        )
    c, h, w = (int(s) for s in input_shape)
    if c != 3:
        raise UserError(
            f"torchvision models expect 3-channel inputs, got input_shape {(c, h, w)}; "
            "use a registry model (lenet-*, mlp*, resnet-*, wrn-*) for 1-channel data"
        )
    config: dict[str, object] = {"weights": None, "num_classes": int(num_classes)}
    if name in _NO_AUX:
        config["aux_logits"] = False
        config["init_weights"] = True  # silences torchvision's "default init changed" warning
    model = torchvision.models.get_model(name, **config)
    _check_forward(model, name, (c, h, w))
    return model


def _check_forward(model: nn.Module, name: str, input_shape: tuple[int, int, int]) -> None:
    """One batch-1 forward in eval mode; turn shape errors into a UserError now, not mid-run."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()  # BatchNorm rejects a batch of 1 in training mode
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    except (RuntimeError, ValueError, AssertionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"torchvision:{name} cannot process inputs of shape {input_shape}: {first_line}"
        ) from None
    finally:
        model.train(was_training)
