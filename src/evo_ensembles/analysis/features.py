"""Feature visualisation of one unit (SPEC §5 "interpretable diversity").

Optimise an input from seeded noise with Adam (lr 0.05, 1,024 steps) to maximise the mean
activation of one unit — a channel of a Conv layer, or one output feature of a Linear layer —
captured by a forward hook. Before every forward pass the image goes through a freshly drawn
random transform (Olah et al. 2017, "transformation robustness"), in this order:

1. jitter: an integer translation of at most 8 px in x and y (edge pad + crop);
2. scale: a factor drawn uniformly from [0.95, 1.05];
3. rotate: an angle drawn uniformly from [-5°, 5°];
4. jitter: an integer translation of at most 4 px (edge pad + crop).

Scale and rotation are one ``torchvision.transforms.v2.functional.affine`` (bilinear) on an
edge-padded canvas that is cropped back, so no black corners enter the image. Transform
parameters come from an explicit ``torch.Generator`` (:func:`random_transform_params`), the
starting noise from the same generator: same seed ⇒ the same image, bit for bit, on CPU.

The image lives in pixel space [0, 1] as ``sigmoid(z)`` (z is what Adam updates); the model
sees ``(image − mean) / std`` with the data's normalisation, so pass ``mean``/``std`` for a
model trained on normalised data. The returned image is the [0, 1] pixel image.

Why not torch-lucent (verdict: not usable here): its last release, 0.1.8, is from 2021 and
requires kornia; its kornia requirement has been held at the 0.4 line since kornia 0.4.1
changed ``get_rotation_matrix2d`` under it (greentfrapp/lucent#12), and its transforms
call that 2020 kornia API. kornia is not installed in this project and cannot be added,
and a kornia of 2020 predates torch 2.x, so it cannot be expected to work with the pinned
torch 2.14.1. Lucent also draws its transform parameters from NumPy's global random state
and fixes its device at import, both against this project's seeding and device rules.
Four small transforms on torchvision's v2 functional ops do the same job here.

Examples:
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 3))
    >>> vis = visualise_unit(net, "0", 2, (1, 16, 16), steps=5, seed=0)
    >>> vis.image.shape, len(vis.trace)
    (torch.Size([1, 16, 16]), 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, cast

import torch
from torch import nn

from ..checks import check_positive_int
from ..errors import UserError

UNIT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
DEFAULT_JITTER = 8  # px, first jitter
DEFAULT_SCALE = (0.95, 1.05)
DEFAULT_DEGREES = 5.0
DEFAULT_JITTER2 = 4  # px, last jitter
INIT_STD = 0.1  # std of the starting noise in z (image = sigmoid(z) ≈ 0.5 ± 0.025)


@dataclass(frozen=True)
class TransformParams:
    """One draw of the four transforms; shifts are (dx, dy) in whole pixels."""

    shift1: tuple[int, int]
    scale: float
    angle: float  # degrees, counter-clockwise
    shift2: tuple[int, int]


class UnitVisualisation(NamedTuple):
    """The optimised image (C, H, W) in [0, 1] and the unit's activation before each step."""

    image: torch.Tensor
    trace: list[float]


def unit_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose units can be visualised (Conv and Linear), by module name."""
    return {n: m for n, m in model.named_modules() if n and isinstance(m, UNIT_LAYERS)}


def _find_unit(model: nn.Module, layer: str, channel: int) -> nn.Module:
    layers = unit_layers(model)
    if layer not in layers:
        raise UserError(f"no Conv/Linear layer named {layer!r} in the model; "
                        f"choose from {', '.join(layers) or '(none)'}")
    module = layers[layer]
    n = module.out_features if isinstance(module, nn.Linear) else cast(int, module.out_channels)  # a ConvNd
    if not 0 <= channel < n:
        raise UserError(f"layer {layer!r} has {n} units (0..{n - 1}), got unit {channel}")
    return module


def random_transform_params(
    generator: torch.Generator,
    *,
    jitter: int = DEFAULT_JITTER,
    scale: tuple[float, float] = DEFAULT_SCALE,
    degrees: float = DEFAULT_DEGREES,
    jitter2: int = DEFAULT_JITTER2,
) -> TransformParams:
    """Draw one set of transform parameters from ``generator`` (CPU).

    Shifts are integers uniform in [-jitter, jitter]; the scale is uniform in ``scale``; the
    angle is uniform in [-degrees, degrees].

    Examples:
        >>> p = random_transform_params(torch.Generator().manual_seed(0))
        >>> abs(p.angle) <= 5 and 0.95 <= p.scale <= 1.05 and max(map(abs, p.shift1)) <= 8
        True
    """
    s1 = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
    u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    s2 = torch.randint(-jitter2, jitter2 + 1, (2,), generator=generator).tolist()
    return TransformParams(
        shift1=(int(s1[0]), int(s1[1])),
        scale=scale[0] + (scale[1] - scale[0]) * u[0],
        angle=degrees * (2.0 * u[1] - 1.0),
        shift2=(int(s2[0]), int(s2[1])),
    )


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate by whole pixels (content moves right/down for positive dx/dy), edge fill."""
    from torchvision.transforms.v2 import functional as F

    if dx == 0 and dy == 0:
        return x
    d = max(abs(dx), abs(dy))
    h, w = x.shape[-2:]
    return F.crop(F.pad(x, [d, d, d, d], padding_mode="edge"), d - dy, d - dx, h, w)


def _scale_rotate(x: torch.Tensor, scale: float, angle: float) -> torch.Tensor:
    """Scale and rotate about the centre on an edge-padded canvas, cropped back to size."""
    from torchvision.transforms.v2 import functional as F

    h, w = x.shape[-2:]
    a = math.radians(abs(angle))
    # Half the side of the square the output's inverse image can reach, past the image.
    reach = 0.5 * max(h, w) * (math.cos(a) + math.sin(a)) / scale
    m = max(1, math.ceil(reach - 0.5 * max(h, w)) + 1)
    canvas = F.pad(x, [m, m, m, m], padding_mode="edge")
    out = F.affine(canvas, angle=angle, translate=[0.0, 0.0], scale=scale, shear=[0.0, 0.0],
                   interpolation=F.InterpolationMode.BILINEAR)
    return F.crop(out, m, m, h, w)


def apply_transform(x: torch.Tensor, params: TransformParams) -> torch.Tensor:
    """Jitter, scale, rotate, jitter an image batch (..., H, W); the shape is kept."""
    x = _shift(x, *params.shift1)
    x = _scale_rotate(x, params.scale, params.angle)
    return _shift(x, *params.shift2)


class _Stop(Exception):
    """Raised by the hook once the unit's layer has run: the rest of the net is not needed."""


def visualise_unit(
    model: nn.Module,
    layer: str,
    channel: int,
    input_shape: Sequence[int],
    *,
    steps: int = 1024,
    lr: float = 0.05,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: bool = False,
) -> UnitVisualisation:
    """Maximise the mean activation of unit ``channel`` of layer ``layer``.

    ``layer`` is a name from ``model.named_modules()`` (a Conv or Linear layer);
    ``input_shape`` is (C, H, W). ``mean``/``std`` (one value per channel) normalise the
    [0, 1] image before the model sees it. The model runs in eval mode (restored after); its
    parameters get no gradients; each forward pass stops once ``layer`` has run. Returns the
    image (C, H, W) in [0, 1] on CPU and the objective before each step.
    """
    module = _find_unit(model, layer, channel)
    check_positive_int(steps, "steps")
    c, h, w = (int(v) for v in input_shape)
    for name, v in (("mean", mean), ("std", std)):
        if v is not None and len(v) != c:
            raise UserError(f"{name} needs one value per channel ({c}), got {len(v)}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = (INIT_STD * torch.randn(1, c, h, w, generator=g)).to(device).requires_grad_()
    shape = (1, c, 1, 1)
    mu = torch.tensor(mean if mean is not None else [0.0] * c, device=device).view(shape)
    sd = torch.tensor(std if std is not None else [1.0] * c, device=device).view(shape)
    opt = torch.optim.Adam([z], lr=lr)
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        captured.append(out)
        raise _Stop

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    trace: list[float] = []
    try:
        it = range(steps)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"feature vis {layer}[{channel}]", leave=False)
        for _ in it:
            img = apply_transform(torch.sigmoid(z), random_transform_params(g))
            captured.clear()
            try:
                model((img - mu) / sd)
            except _Stop:
                pass
            objective = captured[0][:, channel].mean()
            trace.append(float(objective.detach()))
            opt.zero_grad(set_to_none=True)
            (grad,) = torch.autograd.grad(-objective, z)
            z.grad = grad
            opt.step()
    finally:
        handle.remove()
        model.train(was_training)
    return UnitVisualisation(torch.sigmoid(z).detach()[0].cpu(), trace)


def _display(img: torch.Tensor) -> torch.Tensor:
    """(C, H, W) or (H, W) → (H, W) or (H, W, 3) min-max scaled to [0, 1] for imshow."""
    img = img.detach().float().cpu()
    if img.dim() == 3:
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else torch.zeros_like(img)


def plot_image_grid(
    path: Path | str,
    rows: Sequence[Sequence[torch.Tensor]],
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    title: str = "",
    cmap: str = "gray",
) -> None:
    """Images in a grid (e.g. one row per unit, one column per member), each min-max scaled
    on its own. Images are (C, H, W) with C in {1, 3}, or (H, W)."""
    from ..reporting import _save, plt

    nr, nc = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(nr, nc, figsize=(1.6 * nc + 0.6, 1.6 * nr + 0.4), squeeze=False)
    for i in range(nr):
        for j in range(nc):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows[i]):
                ax.imshow(_display(rows[i][j]).numpy(), cmap=cmap)
            else:
                ax.axis("off")
            if i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0 and i < len(row_labels):
                ax.set_ylabel(row_labels[i], fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, Path(path))
