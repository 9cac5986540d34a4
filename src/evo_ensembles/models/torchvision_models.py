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

Examples:
    >>> import torch
    >>> net = build_torchvision_model("resnet18", (3, 32, 32), 10)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from ..errors import UnknownNameError, UserError, first_line

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

    Examples:
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
        raise UserError(
            f"torchvision:{name} cannot process inputs of shape {input_shape}: {first_line(exc)}"
        ) from None
    finally:
        model.train(was_training)


def _check_name(name: str) -> str:
    name = name.strip().lower()
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if name not in torchvision_classification_models():
        build_torchvision_model(name, (3, 224, 224), 1000)  # raises the UnknownNameError with examples
    return name


def weights_enum(name: str, weights: str = "DEFAULT") -> Any:
    """torchvision's weights of model ``name``: ``"DEFAULT"``, an entry such as
    ``"IMAGENET1K_V1"``, or its full name ``"ResNet18_Weights.IMAGENET1K_V1"``."""
    name = _check_name(name)
    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError:
        raise UserError(f"torchvision has no pretrained weights for {name}") from None
    entry = weights.split(".")[-1]
    if entry.upper() == "DEFAULT":
        return enum.DEFAULT
    if entry not in enum.__members__:
        raise UserError(f"{name} has no weights {weights!r}; choose DEFAULT, {', '.join(enum.__members__)} "
                        "or a weights file")
    return enum[entry]


def _state_from_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a plain ``torch.save``d one; never runs pickled code."""
    import pickle

    if path.suffix == ".safetensors":
        from ..train.checkpoint import load_tensors

        return load_tensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{path} is not a plain state dict; refused, since loading it could run code "
                        f"({first_line(e)})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise UserError(f"cannot read weights file {path}: {first_line(e)}") from None
    for wrapper in ("state_dict", "model"):  # common training-script checkpoints
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def pretrained_torchvision_model(name: str, weights: str | None = "DEFAULT", *, num_classes: int = 1000,
                                 seed: int = 0, progress: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """An ImageNet classifier ``torchvision.models.<name>`` with ``weights``, in eval mode.

    ``weights``: ``None`` (random init from ``seed``, with ``num_classes`` outputs), ``"DEFAULT"``
    or a named entry (torchvision's own weights, through its normal cache and download), or a
    file: a ``.safetensors`` or a ``torch.save``d state dict (read with ``weights_only=True``, so a
    pickle is refused).

    Returns the model and a record: which weights, the number of classes, and the weights
    whose ``transforms()`` give its preprocessing (``None`` when torchvision has none).

    Examples:
        >>> net, info = pretrained_torchvision_model("squeezenet1_1", None)
        >>> info["weights"], info["num_classes"]
        ('random init', 1000)
    """
    name = _check_name(name)
    kwargs: dict[str, Any] = {"aux_logits": False} if name in _NO_AUX else {}
    try:
        default = weights_enum(name)
    except UserError:
        default = None
    if weights is None:
        # As build_model(..., seed=seed): the global random state is forked, not consumed.
        with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
            if seed is not None:
                torch.manual_seed(int(seed))
            model = build_torchvision_model(name, (3, 224, 224), num_classes)
        info = {"weights": "random init", "transforms_of": None if default is None else str(default)}
    elif Path(weights).suffix in (".safetensors", ".pt", ".pth", ".bin") or Path(weights).exists():
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"weights file not found: {path}")
        state = _state_from_file(path)
        build_kw = {**kwargs, "init_weights": False} if kwargs else {}
        probe = torchvision.models.get_model(name, weights=None, **build_kw)
        out_layer = [n for n, m in probe.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
        head = state.get(f"{out_layer}.weight")
        classes = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim >= 2 else 1000
        model = probe if classes == 1000 else torchvision.models.get_model(name, weights=None,
                                                                           num_classes=classes, **build_kw)
        aux = ("AuxLogits.", "aux1.", "aux2.")
        if not any(k.startswith(aux) for k in model.state_dict()):
            state = {k: v for k, v in state.items() if not k.startswith(aux)}
        from ..train.checkpoint import load_state_into

        load_state_into(model, state, f"{path} (weights for {name}?)")
        info = {"weights": str(path), "transforms_of": None if default is None else str(default)}
    else:
        w = weights_enum(name, weights)
        try:
            model = torchvision.models.get_model(name, weights=w, progress=progress, **kwargs)
        except (OSError, RuntimeError) as e:  # urllib's URLError is an OSError
            target = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
            raise UserError(f"cannot get {w} ({first_line(e)}); without a network, download {w.url} "
                            f"and put it at {target}") from None
        info = {"weights": str(w), "transforms_of": str(w)}
    model.eval()
    out = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    return model, {**info, "model": name, "num_classes": int(out.out_channels if isinstance(out, nn.Conv2d)
                                                               else out.out_features)}
